"""Tool definitions, ``tool_choice`` and tool-call messages, checked and put in one shape.

Tools are OpenAI-shaped: ``{"type": "function", "function": {"name", "description",
"parameters"}}`` where ``parameters`` is a JSON Schema (checked against its metaschema by
``jsonschema``) for an object. A plain Python function is a tool too: its schema comes
from its signature, type hints and docstring (:func:`function_to_tool`).

Messages may carry an assistant's ``tool_calls`` (ids, names, arguments as a JSON string
or an object) and ``role: "tool"`` results whose ``tool_call_id`` must name a call made
earlier in the conversation. Every problem is a :class:`~fireside.errors.ToolError`
naming what was wrong.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema

from fireside.errors import ToolError

MAX_TOOLS = 128
"""Tools one request may define (OpenAI's limit)."""
MAX_TOOL_CHARS = 65_536
"""The longest tool definition accepted, as compact JSON text."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a function name must match in full (OpenAI's rule)."""

ToolLike = Mapping[str, Any] | Callable[..., Any]


@dataclass(frozen=True)
class ToolChoice:
    """A checked ``tool_choice``: ``mode`` is ``"auto"``, ``"none"`` or ``"required"``;
    ``name`` is the one function that must be called (``mode`` is then ``"required"``)."""

    mode: Literal["auto", "none", "required"]
    name: str | None = None

    @property
    def forced(self) -> bool:
        """Whether the reply must be a tool call (and so is grammar-constrained)."""
        return self.mode == "required"


# -- tool definitions -------------------------------------------------------------------


def check_tools(tools: Sequence[ToolLike] | None) -> list[dict[str, Any]]:
    """``tools`` as OpenAI-shaped dicts, checked; Python functions are converted.

    Raises :class:`~fireside.errors.ToolError` for a definition that is not a function
    tool, a bad or repeated name, ``parameters`` that are not a valid JSON Schema for an
    object, more than :data:`MAX_TOOLS` tools or one longer than :data:`MAX_TOOL_CHARS`.
    """
    if tools is None:
        return []
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise ToolError("tools must be a list of tool definitions or functions")
    if len(tools) > MAX_TOOLS:
        raise ToolError(f"{len(tools)} tools given; at most {MAX_TOOLS} are allowed")
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if callable(tool) and not isinstance(tool, Mapping):
            tool = function_to_tool(tool)
        definition = _check_tool(tool, f"tools[{i}]")
        name = definition["function"]["name"]
        if name in seen:
            raise ToolError(f"tools[{i}]: the function name {name!r} is defined twice")
        seen.add(name)
        checked.append(definition)
    return checked


def _check_tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping):
        raise ToolError(f"{where} must be a dict or a function, got {type(tool).__name__}")
    if tool.get("type", "function") != "function":
        raise ToolError(f"{where}: only tools of type 'function' exist, got {tool.get('type')!r}")
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise ToolError(f"{where} needs a 'function' object with 'name' and 'parameters'")
    name = function.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ToolError(
            f"{where}: the function name {name!r} must be 1 to 64 letters, digits, '_' or '-'"
        )
    description = function.get("description", "")
    if not isinstance(description, str):
        raise ToolError(f"{where}: the description of {name!r} must be a string")
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    try:
        size = len(json.dumps(tool, separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError) as e:
        raise ToolError(f"{where} ({name!r}) is not plain JSON data: {e}") from None
    if size > MAX_TOOL_CHARS:
        raise ToolError(
            f"{where} ({name!r}) is {size:,} characters as JSON; the limit is {MAX_TOOL_CHARS:,}"
        )
    _check_parameters(parameters, f"{where} ({name!r})")
    result: dict[str, Any] = {"name": name}
    if description:
        result["description"] = description
    result["parameters"] = json.loads(json.dumps(parameters))
    if "strict" in function:
        result["strict"] = bool(function["strict"])
    return {"type": "function", "function": result}


def _check_parameters(schema: Any, where: str) -> None:
    if not isinstance(schema, Mapping):
        raise ToolError(f"{where}: 'parameters' must be a JSON Schema object, got {schema!r}")
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        path = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ToolError(
            f"{where}: 'parameters' is not a valid JSON Schema at {path}: {e.message}"
        ) from None
    kind = schema.get("type", "object")
    if kind != "object":
        raise ToolError(f"{where}: 'parameters' must describe an object, not type {kind!r}")


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The function names of checked ``tools``, in order."""
    return [t["function"]["name"] for t in tools]


def find_tool(tools: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any] | None:
    """The function part (``name``, ``parameters``, ...) of the checked tool ``name``."""
    for tool in tools:
        if tool["function"]["name"] == name:
            return dict(tool["function"])
    return None


# -- tool_choice ------------------------------------------------------------------------


def check_tool_choice(tool_choice: Any, tools: Sequence[Mapping[str, Any]]) -> ToolChoice:
    """Check ``tool_choice`` (``"auto"``, ``"none"``, ``"required"``, ``None`` for auto,
    or ``{"type": "function", "function": {"name": ...}}``) against checked ``tools``."""
    if tool_choice is None or tool_choice == "auto":
        return ToolChoice("auto" if tools else "none")
    if tool_choice == "none":
        return ToolChoice("none")
    if tool_choice == "required":
        if not tools:
            raise ToolError("tool_choice='required' needs at least one tool in tools")
        return ToolChoice("required")
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if tool_choice.get("type") != "function" or not isinstance(name, str):
            raise ToolError(
                "tool_choice as an object must be "
                '{"type": "function", "function": {"name": "..."}}, '
                f"got {json.dumps(tool_choice, default=repr)[:200]}"
            )
        if name not in tool_names(tools):
            known = ", ".join(tool_names(tools)) or "none"
            raise ToolError(
                f"tool_choice names the function {name!r}, which is not in tools ({known})"
            )
        return ToolChoice("required", name)
    raise ToolError(
        "tool_choice must be 'auto', 'none', 'required' or "
        f'{{"type": "function", "function": {{"name": ...}}}}, got {tool_choice!r}'
    )


# -- messages ---------------------------------------------------------------------------


def check_tool_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``messages`` with every assistant ``tool_calls`` checked (arguments as
    JSON text) and every ``role: "tool"`` message's ``tool_call_id`` matched to a call
    made earlier. A tool message without an id gets the id of the earliest call not yet
    answered; one that names no call raises :class:`~fireside.errors.ToolError`."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ToolError("messages must be a list of dicts")
    out: list[dict[str, Any]] = []
    calls: dict[str, str] = {}  # id -> function name
    unanswered: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ToolError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        message = dict(message)
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            message["tool_calls"] = [
                _check_call(call, f"messages[{i}].tool_calls[{j}]")
                for j, call in enumerate(_as_list(message["tool_calls"], i))
            ]
            for call in message["tool_calls"]:
                if call["id"] in calls:
                    raise ToolError(f"messages[{i}]: the tool call id {call['id']!r} is used twice")
                calls[call["id"]] = call["function"]["name"]
                unanswered.append(call["id"])
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None:
                if not unanswered:
                    raise ToolError(
                        f"messages[{i}] is a tool result without a tool_call_id, and no "
                        "earlier tool call is waiting for one"
                    )
                call_id = unanswered[0]
                message["tool_call_id"] = call_id
            if not isinstance(call_id, str) or call_id not in calls:
                known = ", ".join(repr(c) for c in calls) or "none were made"
                raise ToolError(
                    f"messages[{i}]: tool_call_id {call_id!r} matches no earlier tool call "
                    f"(calls so far: {known})"
                )
            if call_id in unanswered:
                unanswered.remove(call_id)
            message.setdefault("name", calls[call_id])
            content = message.get("content")
            if content is None:
                message["content"] = ""
            elif not isinstance(content, str):
                message["content"] = json.dumps(content, ensure_ascii=False)
        out.append(message)
    return out


def _as_list(value: Any, i: int) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ToolError(f"messages[{i}].tool_calls must be a list of calls")
    return list(value)


def _check_call(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise ToolError(f"{where} must be a dict with 'id' and 'function'")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise ToolError(f"{where} needs an 'id' string, got {call_id!r}")
    function = call.get("function")
    if not isinstance(function, Mapping):
        raise ToolError(f"{where} needs a 'function' with 'name' and 'arguments'")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ToolError(f"{where}: the function needs a 'name' string, got {name!r}")
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, Mapping):
        arguments = json.dumps(arguments, ensure_ascii=False)
    elif isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            raise ToolError(f"{where}: the arguments of {name!r} are not JSON: {e}") from None
        if not isinstance(parsed, dict):
            raise ToolError(f"{where}: the arguments of {name!r} must be a JSON object")
        arguments = arguments if arguments.strip() else "{}"
    else:
        raise ToolError(f"{where}: arguments must be a JSON string or an object")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# -- Python functions as tools ----------------------------------------------------------


def function_to_tool(fn: Callable[..., Any]) -> dict[str, Any]:
    """An OpenAI-shaped tool definition for the Python function ``fn``.

    The name is ``fn.__name__``; the description is the docstring's summary; each
    parameter's schema comes from its type hint (``str``, ``int``, ``float``, ``bool``,
    ``list[...]``, ``tuple[...]``, ``dict[str, ...]``, ``Literal[...]``, ``Enum``
    subclasses, ``Optional``/``X | None`` and other unions) and its description from the
    docstring (Google ``Args:``, NumPy ``Parameters`` or reST ``:param x:`` style).
    Parameters without a default are required. ``*args``/``**kwargs`` and unsupported
    hints raise :class:`~fireside.errors.ToolError`.
    """
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ToolError(f"cannot use {fn!r} as a tool: its name must match {NAME_PATTERN.pattern}")
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except (TypeError, ValueError, NameError) as e:
        raise ToolError(f"cannot read the signature of tool function {name!r}: {e}") from None
    summary, descriptions = parse_docstring(inspect.getdoc(fn) or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"tool function {name!r}: *args and **kwargs cannot be tool parameters")
        hint = hints.get(param.name, Any)
        try:
            schema = type_to_schema(hint)
        except ToolError as e:
            raise ToolError(f"tool function {name!r}, parameter {param.name!r}: {e}") from None
        if param.name in descriptions:
            schema["description"] = descriptions[param.name]
        properties[param.name] = schema
        if param.default is param.empty:
            required.append(param.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    function: dict[str, Any] = {"name": name}
    if summary:
        function["description"] = summary
    function["parameters"] = parameters
    return {"type": "function", "function": function}


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def type_to_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema for a Python type hint (see :func:`function_to_tool`)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        return {"type": _json_type(values, hint.__name__), "enum": values}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return type_to_schema(args[0])
    if origin is Literal:
        values = list(args)
        return {"type": _json_type(values, "Literal"), "enum": values}
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        schemas = [type_to_schema(a) for a in options]
        if len(options) < len(args):  # Optional
            schemas.append({"type": "null"})
        if all(set(s) == {"type"} and isinstance(s["type"], str) for s in schemas):
            return {"type": [s["type"] for s in schemas]}
        return {"anyOf": schemas}
    if hint in (list, tuple, set, frozenset) or origin in (list, set, frozenset, Sequence):
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = type_to_schema(args[0])
        return schema
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": type_to_schema(args[0])}
        return {
            "type": "array",
            "prefixItems": [type_to_schema(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if hint is dict or origin in (dict, Mapping):
        schema = {"type": "object"}
        if len(args) == 2:
            if args[0] is not str:
                raise ToolError(f"dict keys must be str in JSON, got {args[0]!r}")
            schema["additionalProperties"] = type_to_schema(args[1])
        return schema
    raise ToolError(f"the type hint {hint!r} has no JSON Schema equivalent")


def _json_type(values: list[Any], where: str) -> str | list[str]:
    kinds = []
    for value in values:
        kind = _SIMPLE.get(type(value))
        if kind is None:
            raise ToolError(f"{where} value {value!r} is not a JSON string, number or boolean")
        if kind not in kinds:
            kinds.append(kind)
    return kinds[0] if len(kinds) == 1 else kinds


# Google "Args:" sections, NumPy "Parameters\n----------" sections, reST ":param x: ...".
_GOOGLE_HEAD = re.compile(r"^(Args|Arguments|Parameters|Params)\s*:\s*$")
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*(?::\s*.*)?$")
_REST_ITEM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_SECTION = re.compile(
    r"^(Returns?|Yields?|Raises?|Examples?|Notes?|See Also|References|Attributes|Warnings?)"
    r"\s*:?\s*$"
)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(summary, {parameter: description})`` from a Google, NumPy or reST docstring.

    The summary is the text before the first section, with lines joined."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    summary_lines: list[str] = []
    params: dict[str, str] = {}
    i = 0
    while i < len(lines) and not _is_section_start(lines, i):
        summary_lines.append(lines[i].strip())
        i += 1
    current: str | None = None
    mode = ""
    base_indent = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        rest = _REST_ITEM.match(stripped)
        if rest:
            current, mode = rest.group(1), "rest"
            params[current] = rest.group(2).strip()
        elif _GOOGLE_HEAD.match(stripped) and not _is_numpy_head(lines, i):
            mode, current, base_indent = "google", None, -1
        elif _is_numpy_head(lines, i):
            is_params = stripped.rstrip(":") in ("Parameters", "Params", "Args", "Arguments")
            mode, current, base_indent = ("numpy" if is_params else "skip"), None, indent
            i += 1  # the dashes
        elif _SECTION.match(stripped) or (stripped.startswith(":") and not rest):
            mode, current = "skip", None
        elif not stripped:
            if mode == "rest":
                current = None
        elif mode == "google":
            if base_indent < 0:
                base_indent = indent
            item = _GOOGLE_ITEM.match(stripped) if indent <= base_indent else None
            if item:
                current = item.group(1).lstrip("*")
                params[current] = item.group(2).strip()
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif mode == "numpy":
            item = _NUMPY_ITEM.match(stripped) if indent <= base_indent else None
            if item:
                current = item.group(1)
                params[current] = ""
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif mode == "rest" and current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
        i += 1
    summary = " ".join(s for s in summary_lines if s).strip()
    return summary, params


def _is_numpy_head(lines: list[str], i: int) -> bool:
    return (
        i + 1 < len(lines)
        and bool(lines[i].strip())
        and set(lines[i + 1].strip()) == {"-"}
        and len(lines[i + 1].strip()) >= 3
    )


def _is_section_start(lines: list[str], i: int) -> bool:
    stripped = lines[i].strip()
    return bool(
        _GOOGLE_HEAD.match(stripped)
        or _is_numpy_head(lines, i)
        or _REST_ITEM.match(stripped)
        or _SECTION.match(stripped)
        or (stripped.startswith(":") and " " in stripped)
    )
