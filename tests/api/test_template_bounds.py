"""Chat templates are bounded by construction: they compile and render in worker
processes that are killed when they overrun, capped in memory, reused when they do not,
and never left behind when their parent exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fireside import Model
from fireside.chat.session import ChatSession
from fireside.chat.template_pool import TemplatePool, shared_pool
from fireside.chat.templates import MAX_TEMPLATE_CHARS, ChatTemplate
from fireside.errors import TemplateError

# Structures built from shared parts: tiny to build, 2**40 steps to compare or hash, in
# one C call that no check between template steps can interrupt.
NESTED = (
    "{% set ns = namespace(a=[0], b=[0], t=(0,)) %}{% for i in range(40) %}"
    "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% set ns.t = (ns.t, ns.t) %}"
    "{% endfor %}"
)
BLOW_UPS = {
    "compare": NESTED + "{{ ns.a == ns.b }}",
    "hash": NESTED + "{{ {ns.t: 1} | length }}",
    "index": NESTED + "{{ [ns.b].index(ns.a) }}",
    "in": NESTED + "{{ ns.a in [ns.b] }}",
}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def short_limit(monkeypatch: pytest.MonkeyPatch) -> TemplatePool:
    """The shared pool with a 0.5 s time limit (0.3 s grace), restored afterwards."""
    pool = shared_pool()
    monkeypatch.setattr(pool, "time_limit", 0.5)
    monkeypatch.setattr(pool, "kill_grace", 0.3)
    return pool


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    if not Path("/proc/self/stat").exists():  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# --- time ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("source", BLOW_UPS.values(), ids=BLOW_UPS.keys())
def test_one_step_blow_ups_are_stopped_at_the_time_limit(
    source: str, short_limit: TemplatePool
) -> None:
    template = ChatTemplate(source)  # compiles fine: the cost is in rendering
    killed = short_limit.killed
    with pytest.raises(
        TemplateError, match=r"time limit \(0.5 s\); its worker process was stopped"
    ):
        template.render(HI)
    assert short_limit.killed == killed + 1
    # the pool recovers: the next render gets a fresh worker
    assert ChatTemplate.builtin("chatml").render(HI).startswith("<|im_start|>user\nhi")


@pytest.mark.timeout(60)
def test_other_threads_render_while_one_template_overruns(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = shared_pool()
    monkeypatch.setattr(pool, "time_limit", 2.0)
    hostile = ChatTemplate(BLOW_UPS["compare"])
    chatml = ChatTemplate.builtin("chatml")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            hostile.render(HI)
        except TemplateError as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    busy = pool.busy
    thread.start()
    wait_for(lambda: pool.busy > busy, "the hostile render to start")
    for i in range(20):
        assert f"user\n{i}<|im_end|>" in chatml.render([{"role": "user", "content": str(i)}])
    assert thread.is_alive(), "the renders above should have overlapped the hostile one"
    thread.join(60)
    assert len(errors) == 1 and "time limit" in str(errors[0])


# --- compile ----------------------------------------------------------------------------


def test_a_template_over_the_size_cap_is_refused() -> None:
    source = "{{ x }}" * (MAX_TEMPLATE_CHARS // 7 + 1)
    with pytest.raises(TemplateError, match=r"is 131,075 characters long; the limit is 131,072"):
        ChatTemplate(source, name="huge")


@pytest.mark.timeout(60)
def test_compiling_runs_under_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A template just under the cap takes seconds to compile: a short limit stops it."""
    pool = shared_pool()
    monkeypatch.setattr(pool, "time_limit", 0.2)
    monkeypatch.setattr(pool, "kill_grace", 0.2)
    killed = pool.killed
    source = "{{ x }}" * (MAX_TEMPLATE_CHARS // 7)
    with pytest.raises(TemplateError, match=r"'slow' did not compile within the chat template"):
        ChatTemplate(source, name="slow")
    assert pool.killed == killed + 1


# --- memory ------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_a_worker_is_capped_in_memory() -> None:
    pool = TemplatePool(memory_limit=200 << 20)
    try:
        source = "{{ ((messages[0].content * 8) ~ 'y') | length }}"  # within the size budget
        pool.compile(source, "(test)")
        big = {"messages": [{"role": "user", "content": "x" * 20_000_000}]}
        with pytest.raises(TemplateError, match=r"out of memory \(the 200 MiB memory limit"):
            pool.render(source, big, "(test)")
        small = {"messages": [{"role": "user", "content": "x" * 1000}]}
        assert pool.render(source, small, "(test)") == "8001"
        assert pool.spawned == 2  # the worker that ran out was replaced
    finally:
        pool.close()


# --- reuse -------------------------------------------------------------------------------


def test_workers_are_reused_and_compile_each_template_once() -> None:
    pool = TemplatePool()
    try:
        a, b = "A{{ messages | length }}", "B{{ messages[0].content }}"
        for source in (a, b):
            pool.compile(source, "(test)")
        for _ in range(20):
            assert pool.render(a, {"messages": HI}, "(test)") == "A1"
            assert pool.render(b, {"messages": HI}, "(test)") == "Bhi"
        assert pool.spawned == 1
        [stats] = pool.worker_stats()
        assert stats["compiles"] == 2
        assert pool.pids == [stats["pid"]]
    finally:
        pool.close()
    assert not running(stats["pid"])


def test_template_errors_keep_the_worker() -> None:
    pool = TemplatePool()
    try:
        source = "{{ raise_exception('no system role') }}"
        pool.compile(source, "(test)")
        for _ in range(3):
            with pytest.raises(TemplateError, match="^no system role$"):
                pool.render(source, {}, "(test)")
        assert pool.spawned == 1
    finally:
        pool.close()


def test_variables_that_cannot_be_sent_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="plain data"):
        ChatTemplate("{{ f }}").render(HI, f=lambda: 1)


# --- no workers left behind --------------------------------------------------------------

SCRIPT = """
import sys, threading
from fireside.chat.template_pool import shared_pool
from fireside.chat.templates import ChatTemplate
mode, hostile, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
pool = shared_pool()
pool.time_limit = limit
ChatTemplate.builtin("chatml").render([{"role": "user", "content": "hi"}])
if mode.endswith("busy"):
    template = ChatTemplate(hostile)
    threading.Thread(target=template.render, args=([],), daemon=True).start()
    while pool.busy == 0:
        threading.Event().wait(0.01)
if mode == "busy":
    ChatTemplate.builtin("chatml").render([])  # on a second worker, idle at exit
print(" ".join(map(str, pool.pids)), flush=True)
if mode.startswith("killed"):
    sys.stdin.read()  # until killed
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_an_exiting_process_stops_its_workers(mode: str) -> None:
    # a 30 s time limit: only the exit can stop the busy worker before the check
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, BLOW_UPS["compare"], "30"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == (2 if mode == "busy" else 1)
    assert not [p for p in pids if running(p)]


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and limits")
@pytest.mark.parametrize("mode", ["killed", "killed-busy"])
def test_workers_of_a_killed_process_exit_by_themselves(mode: str) -> None:
    """An idle orphan sees its requests pipe close; a busy one runs out of CPU time (its
    own limit: the 1 s time limit plus 2 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode, BLOW_UPS["compare"], "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 1 and running(pids[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    wait_for(lambda: not running(pids[0]), "the orphaned worker to exit", timeout=30)


# --- text that is not UTF-8 ----------------------------------------------------------------


def test_a_template_with_undecodable_bytes_is_a_template_error() -> None:
    source = b"{{ 'caf\xe9' }}".decode("utf-8", "surrogateescape")  # as argv gives it
    with pytest.raises(TemplateError, match=r"'argv' is not valid UTF-8 text: character 7"):
        ChatTemplate(source, name="argv")


@pytest.fixture
def non_utf8_gguf(model_path: Path, tmp_path: Path) -> Path:
    """The test model with one byte of its chat template made invalid UTF-8; the tensor
    data is left sparse (a vocab-only load does not read it)."""
    with model_path.open("rb") as f:
        head = bytearray(f.read(4 << 20))
        size = os.fstat(f.fileno()).st_size
    at = head.find(b"You are a helpful AI assistant")
    assert at > 0
    head[at] = 0xFF
    path = tmp_path / "non-utf8-template.gguf"
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def test_a_gguf_template_that_is_not_utf8_is_a_template_error(non_utf8_gguf: Path) -> None:
    core = pytest.importorskip("fireside._core", reason="the native module is not built")
    with (
        core.Model(non_utf8_gguf, vocab_only=True) as model,
        pytest.raises(TemplateError, match=r"tokenizer\.chat_template .* not valid UTF-8"),
    ):
        ChatTemplate.for_model(model)


# --- saved sessions carry templates too ----------------------------------------------------

FREEZE_ON_CUE = (
    "{% if messages[-1].content == 'freeze' %}" + BLOW_UPS["compare"] + "{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n"
)


def write_session(path: Path, chat_template: str) -> Path:
    data = {
        "format": "fireside.chat_session",
        "version": 1,
        "model": "test",
        "overflow": "truncate",
        "chat_template": chat_template,
        "messages": [],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.timeout(60)
def test_loading_a_session_with_a_hostile_template_is_bounded(
    model: Model, tmp_path: Path, short_limit: TemplatePool
) -> None:
    path = write_session(tmp_path / "hostile.json", FREEZE_ON_CUE)
    session = ChatSession.load(path, model)
    assert session.send("hello", max_tokens=2, temperature=0).text is not None
    killed = short_limit.killed
    with pytest.raises(TemplateError, match="time limit"):
        session.send("freeze", max_tokens=2)
    assert short_limit.killed == killed + 1
    assert len(session.history) == 2  # the failed turn recorded nothing

    huge = write_session(tmp_path / "huge.json", "{{ x }}" * MAX_TEMPLATE_CHARS)
    with pytest.raises(TemplateError, match="characters long; the limit is"):
        ChatSession.load(huge, model)

    garbled = tmp_path / "garbled.json"
    garbled.write_bytes(path.read_bytes().replace(b"assistant", b"assist\xffnt"))
    with pytest.raises(ValueError, match="is not a saved chat session"):
        ChatSession.load(garbled, model)
