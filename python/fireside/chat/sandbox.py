"""A Jinja environment for untrusted chat templates: sandboxed and bounded.

Chat templates come from model files, so they are untrusted code. jinja2's
``SandboxedEnvironment`` already blocks private attributes (``__class__``, ``__globals__``,
...) and unsafe callables; there is no loader, so ``include``/``import`` cannot read files.
Templates may change the lists and dicts they are given or build (some real ones keep a
queue with ``append``/``pop``): they render in a worker process on copies of the caller's
values, so nothing outside the render can change. On top of that, every render has a budget:

* loop iterations: each ``{% for %}`` (and ``loop(...)`` of recursive loops) draws from
  the budget per item, and ``range`` draws its length when called;
* produced text: each ``{{ ... }}`` output and each loop iteration's literal text, so
  text piling up in macros and ``{% set %}`` blocks counts, not only the final string;
* value size: the operators and functions that multiply sizes (``*``, ``**``, ``%``,
  ``+``, ``~``, ``center``, ``replace``, ``join``, ``indent``, ``format``, ...) check the
  size of their result *before* building it; a list, dict or set a method grows
  (``append``, ``extend``, ``update``, ...) is checked after each call.

Deep recursion and everything else a template raises become
:class:`~fireside.errors.TemplateError`; ``MemoryError`` is left to the caller.

These budgets are checked between steps, so they cannot stop one step that runs long (a
comparison or hash of a structure built from shared parts is one C call, exponential in
its depth). That is why templates run in a worker process that can be killed
(:mod:`fireside.chat.template_worker`); the budgets give clear errors for the rest.
"""

from __future__ import annotations

import contextvars
import datetime
import itertools
import json
import re
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from fireside.errors import TemplateError

MAX_ITERATIONS = 200_000
"""Loop iterations a render may use, plus one per character of input."""
MAX_OUTPUT = 2_000_000
"""Characters a render may produce, plus eight per character of input."""
MAX_INT_BITS = 4096
"""Largest integer a template may compute, in bits."""
MAX_STRFTIME = 100
MAX_SECONDS = 10.0
"""A render still running after this long fails (checked at each step; the worker
process that runs it is killed shortly after, for steps that do not return)."""


def max_output(input_size: int) -> int:
    """The most characters a render of ``input_size`` characters of input may produce."""
    return MAX_OUTPUT + 8 * input_size


class Budget:
    """What one render may still spend; exceeding it raises TemplateError.

    Steps are loop iterations and calls; each also checks the deadline. Between two
    checks runs one operation on values no larger than ``value_limit``, which is not
    always short (see the module's notes): the worker process bounds that.
    """

    __slots__ = ("deadline", "output", "seconds", "sizes", "steps", "value_limit")

    def __init__(self, input_size: int = 0, seconds: float = MAX_SECONDS) -> None:
        self.steps = MAX_ITERATIONS + input_size
        self.output = max_output(input_size)
        self.value_limit = self.output
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        # sizes of containers measured in this render, by id (holding the object keeps
        # the id from being reused); the sandbox lets no template mutate a container
        self.sizes: dict[int, tuple[Any, int]] = {}

    def iterate(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise TemplateError("the chat template runs too many loop iterations or calls")
        if time.monotonic() > self.deadline:
            raise TemplateError(
                f"the chat template ran for more than {self.seconds:g} seconds (its time limit)"
            )

    def produce(self, n: int) -> None:
        self.output -= n
        if self.output < 0:
            raise TemplateError("the chat template produces too much text")


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "fireside_template_budget", default=None
)


def budget() -> Budget:
    """The budget of the render in progress (a fresh one outside renders, e.g. compiling)."""
    current = _current.get()
    return current if current is not None else Budget()


def size_of(value: Any, limit: int) -> int:
    """A cheap estimate of ``value``'s size as text; stops counting past ``limit``.

    Containers are measured once per render (templates test ``messages | length`` in
    every iteration of a loop over the messages).
    """
    if isinstance(value, (str, bytes)):
        return len(value)
    sizes = budget().sizes
    known = sizes.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif (known := sizes.get(id(item))) is not None and known[0] is item:
            total += known[1]
        elif isinstance(item, Mapping):
            total += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
        if total > limit:
            break
    if isinstance(value, (Mapping, list, tuple)):
        sizes[id(value)] = (value, total)
    return total


def check_size(value: Any, what: str = "a value") -> Any:
    """Return ``value`` if its size is within the value limit, else TemplateError."""
    limit = budget().value_limit
    if size_of(value, limit) > limit:
        raise TemplateError(f"the chat template builds {what} that is too large")
    return value


def _check_int_args(args: Iterable[Any]) -> None:
    limit = budget().value_limit
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > limit:
            raise TemplateError(f"the chat template passes a too large number ({arg})")


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")


def _check_format_widths(fmt: str, args: Iterable[Any], *, braces: bool) -> None:
    """Refuse format strings whose field widths alone would exceed the value limit."""
    total = len(fmt) + sum(size_of(a, budget().value_limit) for a in args)
    if braces:
        for _, _, spec, _ in string.Formatter().parse(fmt):
            if spec:
                if "{" in spec:
                    raise TemplateError("nested format specs are not allowed in chat templates")
                total += sum(int(n) for n in re.findall(r"\d+", spec))
    else:
        for width, precision in _PRINTF_SPEC.findall(fmt):
            if "*" in (width, precision):
                raise TemplateError("'*' widths are not allowed in chat templates")
            total += int(width or 0) + int(precision or 0)
    if total > budget().value_limit:
        raise TemplateError("the chat template formats a too large string")


def _estimate_replace(s: str, old: str, new: str, count: int = -1) -> None:
    n = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        n = min(n, count)
    if len(s) + n * max(0, len(new) - len(old)) > budget().value_limit:
        raise TemplateError("the chat template replaces its way to a too large string")


def _estimate_join(sep: str | bytes, items: Iterable[Any]) -> list[Any]:
    items = list(items)
    limit = budget().value_limit
    total = len(sep) * max(0, len(items) - 1) + sum(size_of(i, limit) for i in items)
    if total > limit:
        raise TemplateError("the chat template joins a too large string")
    return items


def _estimate_lines(s: str, width: int, per: str = "\n") -> None:
    if len(s) + (s.count(per) + 1) * max(0, width) > budget().value_limit:
        raise TemplateError("the chat template pads its way to a too large string")


def _precheck_str_method(
    obj: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Size checks for the ``str``/``bytes`` methods that can grow a string a lot."""
    text = obj if isinstance(obj, str) else obj.decode("latin-1")
    if name == "replace" and len(args) >= 2:
        _estimate_replace(text, str(args[0]), str(args[1]), *args[2:3])
    elif name == "expandtabs":
        width = args[0] if args else kwargs.get("tabsize", 8)
        _estimate_lines(text, int(width), "\t")
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((size_of(v, budget().value_limit) for v in args[0].values()), default=1)
        if len(text) * longest > budget().value_limit:
            raise TemplateError("the chat template translates to a too large string")


class _Transformer(NodeTransformer):
    """Route loops and ``~`` concatenation through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        literal = sum(len(d.data) for d in node.find_all(nodes.TemplateData))
        self.generic_visit(node)
        call = nodes.Call(
            nodes.EnvironmentAttribute("fireside_loop"),
            [node.iter, nodes.Const(literal)],
            [],
            None,
            None,
        )
        node.iter = call.set_lineno(node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        call = nodes.Call(
            nodes.EnvironmentAttribute("fireside_concat"), [nodes.List(node.nodes)], [], None, None
        )
        return call.set_lineno(node.lineno)


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` (Hugging Face's marker for training
    masks) renders its body unchanged."""

    tags = {"generation"}  # noqa: RUF012 - jinja's Extension API

    def parse(self, parser: Any) -> list[nodes.Node]:
        next(parser.stream)
        return list(parser.parse_statements(("name:endgeneration",), drop_needle=True))


def _budgeted(items: Iterable[Any], literal: int) -> Iterator[Any]:
    b = budget()
    for item in items:
        b.iterate()
        if literal:
            b.produce(literal)
        yield item


def _range(*args: Any) -> range:
    _check_int_args(args)
    rng = range(*args)
    budget().iterate(len(rng))
    return rng


def _raise_exception(message: Any) -> None:
    raise TemplateError(str(message))


def _strftime_now(fmt: str) -> str:
    if not isinstance(fmt, str) or len(fmt) > MAX_STRFTIME:
        raise TemplateError("strftime_now needs a short format string")
    return datetime.datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Hugging Face's ``tojson``: real JSON, not HTML-escaped, non-ASCII kept."""
    if indent is not None and not 0 <= int(indent) <= 16:
        raise TemplateError("tojson indent must be between 0 and 16")
    seps = separators if separators is not None else (", ", ": ")
    limit = budget().value_limit
    if isinstance(value, types.GeneratorType):  # `map`/`select` results, as lists (minja)
        value = list(itertools.islice(value, limit + 1))
    if _json_size(value, int(indent or 0), sum(len(str(x)) for x in seps), limit) > limit:
        raise TemplateError("the chat template serialises a too large value")
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
        default=str,
    )


def _json_size(value: Any, indent: int, separators: int, limit: int) -> int:
    """An upper estimate of the length of ``json.dumps(value, indent=indent)`` whose two
    separators together are ``separators`` characters long."""
    total = 0
    stack = [(value, 1)]
    while stack and total <= limit:
        item, depth = stack.pop()
        if isinstance(item, (str, bytes)):
            total += 2 * len(item) + 2  # quotes and escapes
        elif isinstance(item, (Mapping, list, tuple)):
            # brackets, then a separator, newline and indentation per member
            per_member = separators + 1 + indent * depth
            total += 2 + len(item) * per_member + (indent * depth if indent else 0)
            children = [*item.keys(), *item.values()] if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
        else:
            total += 24
    return total


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter with step, argument and result size checks."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        b = budget()
        b.iterate()
        n_env = 1 if args and isinstance(args[0], (jinja2.Environment, Context, EvalContext)) else 0
        values = list(args[n_env:])
        _check_int_args([*values, *kwargs.values()])
        if values:
            check_size(values[0], f"the input of {name}")
            if name == "join":
                values[0] = _estimate_join(
                    str(values[1] if len(values) > 1 else kwargs.get("d", "")), values[0]
                )
            elif name == "replace" and len(values) >= 3:
                _estimate_replace(str(values[0]), str(values[1]), str(values[2]), *values[3:4])
            elif name == "indent":
                width = values[1] if len(values) > 1 else kwargs.get("width", 4)
                _estimate_lines(
                    str(values[0]), width if isinstance(width, int) else len(str(width))
                )
            elif name == "wordwrap":
                width = values[1] if len(values) > 1 else kwargs.get("width", 79)
                wrap = values[3] if len(values) > 3 else kwargs.get("wrapstring") or "\n"
                lines = len(str(values[0])) // max(int(width), 1) + 1
                if len(str(values[0])) + lines * len(str(wrap)) > b.value_limit:
                    raise TemplateError("the chat template wraps to a too large string")
            elif name == "format":
                _check_format_widths(str(values[0]), [*values[1:], *kwargs.values()], braces=False)
            elif name == "sum" and not isinstance(kwargs.get("start", 0), (int, float)):
                raise TemplateError("the sum filter only adds numbers in chat templates")
        result = func(*args[:n_env], *values, **kwargs)
        return check_size(result, f"a {name} result")

    guarded.__name__ = getattr(func, "__name__", name)
    if hasattr(func, "jinja_pass_arg"):
        guarded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return guarded


def _check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``**``, ``%`` and ``+`` whose result would be too large."""
    limit = budget().value_limit
    ints = isinstance(left, int) and isinstance(right, int)
    if op == "*" and ints:
        too_big = left.bit_length() + right.bit_length() > MAX_INT_BITS
    elif op == "*" and (isinstance(left, int) or isinstance(right, int)):
        count, seq = (left, right) if isinstance(left, int) else (right, left)
        too_big = isinstance(seq, (str, list, tuple)) and size_of(seq, limit) * count > limit
    elif op == "**" and ints:
        too_big = right > 0 and max(left.bit_length(), 1) * right > MAX_INT_BITS
    elif op == "%" and isinstance(left, str):
        _check_format_widths(left, right if isinstance(right, tuple) else (right,), braces=False)
        too_big = False
    elif op == "+" and not ints:
        too_big = size_of(left, limit) + size_of(right, limit) > limit
    else:
        too_big = False
    if too_big:
        raise TemplateError(f"the chat template computes a too large value with {op!r}")


class TemplateEnvironment(SandboxedEnvironment):
    """The sandbox chat templates render in (Hugging Face's conventions)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[jinja2.ext.loopcontrols, _GenerationTag],
            optimized=False,  # no constant folding at compile time, outside any budget
            finalize=self._finalize,
            autoescape=False,
        )
        self.globals.pop("lipsum", None)
        self.globals["range"] = _range
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now
        self.filters["tojson"] = _tojson
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.fireside_loop = self._loop
        self.fireside_concat = self._concat

    # -- hooks called by compiled templates ------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Transformer().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree  # type: ignore[no-any-return]

    @staticmethod
    def _loop(iterable: Any, literal: int = 0) -> Iterator[Any]:
        if isinstance(iterable, jinja2.Undefined):
            iterable = ()
        return _budgeted(iterable, literal)

    @staticmethod
    def _concat(parts: list[Any]) -> str:
        limit = budget().value_limit
        if sum(size_of(p, limit) for p in parts) > limit:
            raise TemplateError("the chat template concatenates a too large string")
        return "".join(str(p) for p in parts)

    @staticmethod
    def _finalize(value: Any) -> Any:
        b = budget()
        b.produce(size_of(check_size(value, "an output"), b.value_limit))
        return value

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        _check_binop(operator_name, left, right)
        return self.binop_table[operator_name](left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget().iterate()
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop
            args = (_budgeted(args[0], 0), *args[1:])
        _check_int_args([*args, *kwargs.values()])
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, (str, bytes)):
            name = getattr(obj, "__name__", "")
            if name == "join" and args:
                args = (_estimate_join(owner, args[0]), *args[1:])
            else:
                _precheck_str_method(owner, name, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(obj, Macro) and isinstance(result, str):
            budget().produce(len(result))
        if isinstance(owner, (list, dict, set)):  # append, extend, update, ... grew it
            check_size(owner, "a value")
        return check_size(result, "a value")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format_widths(fmt, [*args, *kwargs.values()], braces=True)
            return wrapper(*args, **kwargs)

        return checked


def render_bounded(
    template: jinja2.Template,
    variables: dict[str, Any],
    input_size: int,
    *,
    seconds: float = MAX_SECONDS,
) -> str:
    """Render ``template`` under a fresh budget; every failure but ``MemoryError`` is a
    TemplateError."""
    b = Budget(input_size, seconds)
    token = _current.set(b)
    try:
        parts = []
        for chunk in template.generate(variables):
            b.produce(len(chunk))
            parts.append(chunk)
        return "".join(parts)
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError("the chat template recurses too deeply") from None
    except MemoryError:
        raise
    except jinja2.TemplateError as e:
        raise TemplateError(f"the chat template failed: {e}") from e
    except Exception as e:  # untrusted code: any failure is the template's
        raise TemplateError(f"the chat template failed: {type(e).__name__}: {e}") from e
    finally:
        _current.reset(token)
