"""The process chat templates compile and render in (its parent is
:mod:`fireside.chat.template_pool`).

A template is untrusted code, and some single operations it can ask for (comparing,
hashing or searching structures it built with shared parts) run for an unbounded time in
one C call, where no budget check can stop them. So templates run here, in a process
that can be killed: the parent stops a worker that overruns its time limit, and the
worker limits itself as well, where the OS allows:

* memory: ``RLIMIT_AS`` caps its address space (``MemoryError`` ends the worker);
* CPU time: before each request ``RLIMIT_CPU`` is set to the time used so far plus the
  request's limit and a grace period, so the worker dies by itself even when its parent
  is gone (an idle worker exits when its parent's end of the pipe closes).

Compiled templates are kept (the most recent :data:`CACHE_SIZE`), so each template
compiles once per worker. The worker writes replies on a private copy of its standard
output and points the real one at standard error, so nothing else can corrupt them.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import OrderedDict
from typing import Any

import jinja2

from fireside.chat import template_protocol as wire
from fireside.chat.sandbox import TemplateEnvironment, render_bounded
from fireside.errors import TemplateError

CACHE_SIZE = 32
"""Compiled templates a worker keeps."""
CPU_GRACE = 2
"""Seconds of CPU time beyond a request's limit before the worker's own limit ends it."""

try:
    import resource
except ImportError:  # Windows: the parent's deadline is the only limit
    resource = None  # type: ignore[assignment]


def compile_template(env: jinja2.Environment, source: str, label: str) -> jinja2.Template:
    """Compile ``source``; failures are TemplateError naming ``label`` and the problem."""
    what = f"chat template {label}"
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"{what} has a syntax error on line {e.lineno}: {e.message}") from None
    except RecursionError:
        raise TemplateError(f"{what} is nested too deeply") from None
    except (jinja2.TemplateError, TemplateError) as e:
        raise TemplateError(f"{what} does not compile: {e}") from None
    except (SyntaxError, ValueError, OverflowError) as e:  # from Python's own compiler
        raise TemplateError(f"{what} does not compile: {type(e).__name__}: {e}") from None


class Worker:
    """Requests in, replies out; keeps compiled templates between requests."""

    def __init__(self) -> None:
        self.env = TemplateEnvironment()
        self.cache: OrderedDict[str, jinja2.Template] = OrderedDict()
        self.compiles = 0

    def template(self, source: str, label: str) -> jinja2.Template:
        template = self.cache.get(source)
        if template is not None:
            self.cache.move_to_end(source)
            return template
        template = compile_template(self.env, source, label)
        self.compiles += 1
        self.cache[source] = template
        if len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return template

    def handle(self, request: tuple[Any, ...]) -> tuple[bytes, str]:
        """``("compile", source, seconds, label)``, ``("render", source, seconds, label,
        variables, input_size)`` or ``("stats",)``."""
        op = request[0]
        if op == "stats":
            return wire.OK, json.dumps({"pid": os.getpid(), "compiles": self.compiles})
        source, seconds, label = request[1], float(request[2]), request[3]
        _limit_cpu(seconds)
        try:
            template = self.template(source, label)
            if op == "compile":
                return wire.OK, ""
            if op == "render":
                variables, input_size = request[4], int(request[5])
                return wire.OK, render_bounded(template, variables, input_size, seconds=seconds)
        except TemplateError as e:
            return wire.ERROR, str(e)
        return wire.FATAL, f"unknown template worker request {op!r}"


def _limit_cpu(seconds: float) -> None:
    if resource is None:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds + CPU_GRACE)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _limit_memory(limit: int) -> None:
    if resource is None or limit <= 0:
        return
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):  # e.g. macOS, which does not enforce it
        pass


def main(memory_limit: int) -> int:
    """Serve requests on standard input until it closes."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    worker = Worker()
    _limit_memory(memory_limit)
    limit_text = f"the {memory_limit / 2**20:g} MiB memory limit of its worker process"
    wire.write_reply(replies, wire.READY)
    while True:
        try:
            request = wire.read_request(requests)
            if request is None:
                return 0
            status, text = worker.handle(request)
        except MemoryError:
            status, text = wire.FATAL, f"the chat template ran out of memory ({limit_text})"
        except Exception as e:  # noqa: BLE001 - a broken request: say so, then stop
            status, text = wire.FATAL, f"the template worker failed: {type(e).__name__}: {e}"
        try:
            wire.write_reply(replies, status, text)
        except MemoryError:
            wire.write_reply(
                replies, wire.FATAL, f"the chat template ran out of memory ({limit_text})"
            )
            return 1
        if status == wire.FATAL:
            return 1
