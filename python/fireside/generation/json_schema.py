"""Convert a JSON Schema into a GBNF grammar that llama.cpp can sample under.

The grammar accepts only JSON text that validates against the schema. Where an exact
grammar would be impractical, it is stricter than the schema but never looser: objects
list their properties in the declared order (extra keys only when ``additionalProperties``
asks for them), numbers have at most 16 significant digits, whitespace between tokens is
at most a newline and 20 spaces or tabs, and repetitions are capped at 2000. Keywords that
cannot be enforced this way raise :class:`~fireside.errors.GrammarError` instead of being
ignored. Annotations (``title``, ``description``, ``default``, ...) and unknown
``format`` values are ignored, as JSON Schema itself does.

Supported: ``type`` (one or a list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``prefixItems`` (or ``items`` as a list with
``additionalItems``), ``minItems``, ``maxItems``,
``minLength``, ``maxLength``, ``format`` (``date``, ``time``, ``date-time``, ``uuid``),
``minimum``/``maximum`` (whole-number bounds; ``exclusive*`` for integers), ``anyOf``,
``oneOf`` (treated as ``anyOf``), ``allOf``, and local ``$ref`` (``#``, ``#/$defs/...``,
``#/definitions/...``), recursion included.

A schema is untrusted input, so its size is bounded (:mod:`fireside.generation.grammar_limits`):
at most 1024 values per ``enum``, 4096 subschemas, 64 levels of nesting, and a grammar within
the GBNF limits. ``enum`` and ``const`` values become a prefix tree, so a long list of
values that share beginnings costs the matcher one parse state per distinct next character.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from fireside.errors import GrammarError
from fireside.generation.grammar_limits import (
    GRAMMAR_MAX_BYTES,
    SCHEMA_MAX_DEPTH,
    SCHEMA_MAX_ENUM_VALUES,
    SCHEMA_MAX_NODES,
)

MAX_REPEAT = 2000
"""llama.cpp's limit on a bounded repetition; longer upper bounds are capped here."""

_NUMBER_DIGITS = 16

_PRIMITIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (body, rules it uses)
    "ws": (r'"\n"? [ \t]{0,20}', ()),  # short: a model cannot pad forever
    "char": (
        (
            r'[^"\\\x00-\x1f] | "\\" ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3}'
            r" | [dD] [0-7] [0-9a-fA-F]{2} ) )"
        ),
        (),
    ),
    "string": (r'"\"" char* "\""', ("char",)),
    "integer": (r'"0" | "-"? [1-9] [0-9]{0,15}', ()),
    "number": (
        r'"-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?',
        (),
    ),
    "boolean": (r'"true" | "false"', ()),
    "null": (r'"null"', ()),
    "value": (
        "object | array | string | number | boolean | null",
        ("object", "array", "string", "number", "boolean", "null"),
    ),
    "member": (r'string ws ":" ws value ws', ("string", "ws", "value")),
    "object": (r'"{" ws ( member ( "," ws member )* )? "}"', ("member", "ws")),
    "array": (r'"[" ws ( value ws ( "," ws value ws )* )? "]"', ("value", "ws")),
    "keychar": (r'[^"\\\x00-\x1f]', ()),
    "hex": (r"[0-9a-fA-F]", ()),
    "date": (
        r'[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] )',
        (),
    ),
    "time": (
        (
            r'( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )?'
            r' ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )'
        ),
        (),
    ),
    "date-time": (r'date "T" time', ("date", "time")),
    "uuid": (r'hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12}', ("hex",)),
}

_FORMATS = ("date", "time", "date-time", "uuid")

_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")

_UNSUPPORTED = (
    "pattern",
    "patternProperties",
    "multipleOf",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "if",
    "then",
    "else",
    "not",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$recursiveRef",
)

_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
    }
)


def json_schema_to_grammar(schema: Mapping[str, Any] | bool) -> str:
    """Return a GBNF grammar (root rule ``root``) for JSON that satisfies ``schema``.

    ``{}`` and ``True`` accept any JSON value. Raises
    :class:`~fireside.errors.GrammarError` naming the keyword and location (a JSON
    pointer such as ``#/properties/age``) of anything invalid or unsupported.
    """
    if not isinstance(schema, (Mapping, bool)):
        raise GrammarError(f"a JSON schema must be an object or a boolean, got {schema!r}")
    converter = _Converter(schema)
    try:
        root = converter.visit(schema, "#")
    except RecursionError:
        raise GrammarError("the JSON schema is nested too deeply") from None
    grammar = converter.grammar(root)
    size = len(grammar.encode("utf-8"))
    if size > GRAMMAR_MAX_BYTES:
        raise GrammarError(
            f"the grammar for this JSON schema would be {size} bytes; at most "
            f"{GRAMMAR_MAX_BYTES} are allowed (grammar limit max_bytes)"
        )
    return grammar


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _class_char(ch: str) -> str:
    """One character for use inside a GBNF character class."""
    if ch.isalnum() or ord(ch) > 0x7F:
        return ch
    return f"\\x{ord(ch):02x}"


def _json_literal(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return gbnf_literal(text)


def _repeat(item: str, lo: int, hi: int | None, where: str) -> str:
    """``item`` repeated ``lo`` to ``hi`` times (``hi=None``: unbounded)."""
    if lo > MAX_REPEAT:
        raise GrammarError(f"{where}: a minimum count above {MAX_REPEAT} is not supported")
    if hi is not None and hi > MAX_REPEAT:
        hi = MAX_REPEAT  # stricter than the schema, never looser
    if hi is None:
        return f"{item}{{{lo},}}" if lo else f"{item}*"
    if hi == 0:
        return ""
    if lo == hi:
        return f"{item}{{{lo}}}" if lo != 1 else item
    return f"{item}{{{lo},{hi}}}"


def _digits_between(a: str, b: str) -> str:
    """GBNF for digit strings of the same length, from ``a`` to ``b`` inclusive."""
    if not a:
        return ""
    if a == b:
        return gbnf_literal(a)
    if a[0] == b[0]:
        return f"{gbnf_literal(a[0])} {_digits_between(a[1:], b[1:])}"
    n = len(a) - 1
    low_full, high_full = a[1:] == "0" * n, b[1:] == "9" * n
    first = int(a[0]) + (0 if low_full else 1)
    last = int(b[0]) - (0 if high_full else 1)
    alts = []
    if not low_full:
        alts.append(f"{gbnf_literal(a[0])} ( {_digits_between(a[1:], '9' * n)} )")
    if first <= last:
        alts.append(f"[{first}-{last}]" + (f" [0-9]{{{n}}}" if n else ""))
    if not high_full:
        alts.append(f"{gbnf_literal(b[0])} ( {_digits_between('0' * n, b[1:])} )")
    return "( " + " | ".join(alts) + " )"


def _natural_range(lo: int, hi: int | None) -> list[str]:
    """Alternatives matching the canonical decimals of the whole numbers in [lo, hi]."""
    max_len = len(str(hi)) if hi is not None else max(len(str(lo)), _NUMBER_DIGITS)
    alts = []
    for n in range(len(str(lo)), max_len + 1):
        a = max(lo, 10 ** (n - 1) if n > 1 else 0)
        b = 10**n - 1 if hi is None else min(hi, 10**n - 1)
        if hi is None and a == 10 ** (n - 1) and n > 1:
            # every longer number up to the digit cap, in one alternative
            alts.append(f"[1-9] [0-9]{{{n - 1},{max_len - 1}}}")
            break
        if a <= b:
            alts.append(_digits_between(str(a), str(b)))
    return alts


def _integer_range(lo: int | None, hi: int | None) -> list[str]:
    """Alternatives matching the integers in [lo, hi] (``None``: unbounded)."""
    alts = []
    if hi is None or hi >= 0:
        alts += _natural_range(max(lo, 0) if lo is not None else 0, hi)
    if lo is None or lo < 0:
        magnitude_lo = 1 if hi is None or hi >= 0 else -hi
        magnitude_hi = None if lo is None else -lo
        alts += [f'"-" {alt}' for alt in _natural_range(magnitude_lo, magnitude_hi)]
    return alts


def _type_matches(value: Any, type_name: str) -> bool:
    if type_name == "null":
        return value is None
    if type_name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if type_name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if type_name == "number":
        return isinstance(value, (int, float))
    return isinstance(value, {"string": str, "object": dict, "array": list}[type_name])


class _Converter:
    """Walks a schema and collects named GBNF rules."""

    def __init__(self, root: Mapping[str, Any] | bool) -> None:
        self.root = root
        self.rules: dict[str, str] = {}
        self.by_body: dict[str, str] = {}
        self.ref_rules: dict[str, str] = {}
        self.n_nodes = 0
        self.depth = 0

    # -- rules ----------------------------------------------------------------------

    def grammar(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"

    def primitive(self, name: str) -> str:
        if name not in self.rules:
            body, uses = _PRIMITIVES[name]
            self.rules[name] = body
            for dep in uses:
                self.primitive(dep)
        return name

    def new_name(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "schema"
        name, n = base, 1
        while name in self.rules or name in _PRIMITIVES or name == "root":
            n += 1
            name = f"{base}-{n}"
        return name

    def rule(self, hint: str, body: str) -> str:
        """A rule with this body (reusing an identical one); returns its name."""
        if body in self.rules:  # the body is itself just a rule name
            return body
        if body in self.by_body:
            return self.by_body[body]
        name = self.new_name(hint)
        self.rules[name] = body
        self.by_body[body] = name
        return name

    # -- schemas --------------------------------------------------------------------

    def visit(self, schema: Any, path: str) -> str:
        """The name of a rule matching ``schema`` (found at JSON pointer ``path``)."""
        self.n_nodes += 1
        if self.n_nodes > SCHEMA_MAX_NODES:
            raise GrammarError(
                f"{path}: the JSON schema has more than {SCHEMA_MAX_NODES} subschemas "
                "(schema limit max_nodes)"
            )
        if self.depth >= SCHEMA_MAX_DEPTH:
            raise GrammarError(
                f"the JSON schema is nested too deeply: more than {SCHEMA_MAX_DEPTH} levels of "
                "subschemas (schema limit max_depth)"
            )
        self.depth += 1
        try:
            return self.visit_schema(schema, path)
        finally:
            self.depth -= 1

    def visit_schema(self, schema: Any, path: str) -> str:
        if schema is True:
            return self.primitive("value")
        if schema is False:
            raise GrammarError(f"{path}: the schema `false` matches nothing")
        if not isinstance(schema, Mapping):
            raise GrammarError(f"{path}: a schema must be an object or a boolean, got {schema!r}")
        for keyword in _UNSUPPORTED:
            if keyword in schema:
                raise GrammarError(f"{path}: the {keyword!r} keyword is not supported")
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
            if rest:
                return self.visit({"allOf": [{"$ref": schema["$ref"]}, rest]}, path)
            return self.ref(schema["$ref"], path)
        if "allOf" in schema:
            return self.visit(self.merge_all_of(schema, path), path)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self.any_of(schema, keyword, path)
        if "const" in schema:
            return self.literals([schema["const"]], schema, path)
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise GrammarError(f"{path}: 'enum' must be a non-empty list")
            if len(values) > SCHEMA_MAX_ENUM_VALUES:
                raise GrammarError(
                    f"{path}: 'enum' has {len(values)} values; at most "
                    f"{SCHEMA_MAX_ENUM_VALUES} are allowed (schema limit max_enum_values)"
                )
            return self.literals(values, schema, path)
        types = self.types(schema, path)
        if types is None:
            return self.primitive("value")
        alts = [self.visit_type(t, schema, path) for t in types]
        return alts[0] if len(alts) == 1 else self.rule(path, " | ".join(alts))

    def types(self, schema: Mapping[str, Any], path: str) -> list[str] | None:
        """The types ``schema`` allows, inferred from its keywords when ``type`` is absent."""
        declared = schema.get("type")
        if declared is None:
            keys = set(schema)
            if keys & {"properties", "required", "additionalProperties"}:
                return ["object"]
            if keys & {"items", "prefixItems", "minItems", "maxItems"}:
                return ["array"]
            if keys & {"minLength", "maxLength", "format"}:
                return ["string"]
            if keys & {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
                return ["number"]
            return None
        names = [declared] if isinstance(declared, str) else declared
        if not isinstance(names, list) or not names:
            raise GrammarError(f"{path}: 'type' must be a type name or a non-empty list of them")
        for name in names:
            if name not in _TYPES:
                raise GrammarError(f"{path}: unknown type {name!r} (expected one of {_TYPES})")
        if "number" in names and "integer" in names:
            names = [n for n in names if n != "integer"]
        return list(dict.fromkeys(names))

    def visit_type(self, type_name: str, schema: Mapping[str, Any], path: str) -> str:
        if type_name == "object":
            return self.object(schema, path)
        if type_name == "array":
            return self.array(schema, path)
        if type_name == "string":
            return self.string(schema, path)
        if type_name in ("number", "integer"):
            return self.number(schema, path, integer=type_name == "integer")
        return self.primitive(type_name)

    def literals(self, values: list[Any], schema: Mapping[str, Any], path: str) -> str:
        types = self.types({"type": schema["type"]}, path) if "type" in schema else None
        if types is not None:
            values = [v for v in values if any(_type_matches(v, t) for t in types)]
            if not values:
                raise GrammarError(f"{path}: no 'enum'/'const' value has the declared type")
        try:
            texts = list(
                dict.fromkeys(
                    json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
                    for v in values
                )
            )
        except (TypeError, ValueError, RecursionError) as e:
            raise GrammarError(f"{path}: 'enum'/'const' values must be JSON values: {e}") from e
        return self.prefix_tree(texts, path)

    def prefix_tree(self, texts: list[str], path: str) -> str:
        """A rule matching exactly ``texts``, as a prefix tree: alternatives that share a
        beginning share one parse state until they differ (llama.cpp tracks one per
        alternative it is inside)."""
        end = ""  # the key marking "a text ends here"
        root: dict[str, Any] = {}
        for text in texts:
            node = root
            for ch in text:
                node = node.setdefault(ch, {})
            node[end] = {}

        def edges(node: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
            out = []
            for label, child in node.items():
                if label == end:
                    continue
                while len(child) == 1 and end not in child:  # one way on: merge the edge
                    ((ch, child),) = child.items()
                    label += ch
                out.append((label, child))
            return out

        def is_leaf(node: dict[str, Any]) -> bool:
            return len(node) == 1 and end in node

        names: dict[int, str] = {}  # id(node) -> its rule (children before parents)
        todo: list[tuple[dict[str, Any], bool]] = [(root, False)]
        while todo:
            node, ready = todo.pop()
            if not ready:
                todo.append((node, True))
                todo.extend((child, False) for _, child in edges(node) if not is_leaf(child))
                continue
            alts = [
                gbnf_literal(label)
                if is_leaf(child)
                else f"{gbnf_literal(label)} {names[id(child)]}"
                for label, child in edges(node)
            ]
            body = " | ".join(alts)
            if end in node:
                body = f"( {body} )?"
            names[id(node)] = self.rule(path, body)
        return names[id(root)]

    def any_of(self, schema: Mapping[str, Any], keyword: str, path: str) -> str:
        options = schema[keyword]
        if not isinstance(options, list) or not options:
            raise GrammarError(f"{path}: {keyword!r} must be a non-empty list of schemas")
        rest = {k: v for k, v in schema.items() if k != keyword and k not in _ANNOTATIONS}
        alts = []
        for i, option in enumerate(options):
            where = f"{path}/{keyword}/{i}"
            if option is False:
                continue
            alts.append(self.visit({"allOf": [rest, option]} if rest else option, where))
        if not alts:
            raise GrammarError(f"{path}: every {keyword!r} option is `false`")
        return self.rule(path, " | ".join(dict.fromkeys(alts)))

    # -- $ref and allOf -------------------------------------------------------------

    def lookup(self, ref: Any, path: str) -> Any:
        """The schema a local ``$ref`` points to."""
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise GrammarError(
                f"{path}: only local $ref ('#' or '#/...') is supported, got {ref!r}"
            )
        target: Any = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise GrammarError(f"{path}: $ref {ref!r} points to nothing")
        return target

    def ref(self, ref: str, path: str) -> str:
        if ref in self.ref_rules:
            return self.ref_rules[ref]
        target = self.lookup(ref, path)
        name = self.new_name(ref.rsplit("/", 1)[-1] if ref != "#" else "root-ref")
        self.ref_rules[ref] = name
        self.rules[name] = ""  # reserved: the target may refer back to this rule
        body = self.visit(target, ref)
        if body == name:
            raise GrammarError(f"{path}: $ref {ref!r} refers only to itself")
        self.rules[name] = body
        return name

    def resolve(self, schema: Any, path: str, depth: int = 0) -> Any:
        """Follow ``$ref`` chains (for merging ``allOf`` members)."""
        while isinstance(schema, Mapping) and "$ref" in schema:
            depth += 1
            if depth > 64:
                raise GrammarError(f"{path}: $ref chain too long or circular")
            rest = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
            target = self.lookup(schema["$ref"], path)
            if rest:
                schema = {"allOf": [target, rest]}
                break
            schema = target
        return schema

    def merge_all_of(self, schema: Mapping[str, Any], path: str, depth: int = 0) -> Any:
        """One schema equivalent to ``schema``'s ``allOf`` members and its own keywords."""
        if depth > 64:
            raise GrammarError(f"{path}: allOf nested too deeply or circular")
        members = schema["allOf"]
        if not isinstance(members, list) or not members:
            raise GrammarError(f"{path}: 'allOf' must be a non-empty list of schemas")
        own = {k: v for k, v in schema.items() if k != "allOf"}
        parts: list[Mapping[str, Any]] = []
        for i, member in enumerate([*members, own]):
            member = self.resolve(member, f"{path}/allOf/{i}")
            if member is True:
                continue
            if member is False:
                raise GrammarError(f"{path}/allOf/{i}: the schema `false` matches nothing")
            if not isinstance(member, Mapping):
                raise GrammarError(f"{path}/allOf/{i}: a schema must be an object or a boolean")
            if "allOf" in member:
                member = self.merge_all_of(member, f"{path}/allOf/{i}", depth + 1)
            if isinstance(member, Mapping):
                parts.append(member)
        merged: dict[str, Any] = {}
        for part in parts:
            for key, value in part.items():
                if key in _ANNOTATIONS:
                    continue
                if key in ("properties", "required") and not isinstance(
                    value, Mapping if key == "properties" else list
                ):
                    raise GrammarError(f"{path}: {key!r} must be an object or a list")
                if key == "properties":
                    props = merged.setdefault("properties", {})
                    for name, sub in value.items():
                        props[name] = (
                            sub if props.get(name, sub) == sub else {"allOf": [props[name], sub]}
                        )
                elif key == "required":
                    merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
                elif key == "type":
                    merged["type"] = self.intersect_types(merged.get("type"), value, path)
                elif key == "additionalProperties":
                    merged[key] = self.merge_additional(merged.get(key, True), value)
                elif key in merged and merged[key] != value:
                    raise GrammarError(f"{path}: allOf members disagree on {key!r}")
                else:
                    merged[key] = value
        self.apply_closed_objects(parts, merged, path)
        return merged

    @staticmethod
    def intersect_types(a: Any, b: Any, path: str) -> Any:
        if a is None:
            return b
        left = {a} if isinstance(a, str) else set(a)
        right = {b} if isinstance(b, str) else set(b)
        for s in (left, right):
            if "number" in s:
                s.add("integer")
        both = [t for t in _TYPES if t in left and t in right]
        if not both:
            raise GrammarError(f"{path}: allOf members allow no common type")
        return both[0] if len(both) == 1 else both

    @staticmethod
    def merge_additional(a: Any, b: Any) -> Any:
        if a is False or b is False:
            return False
        if a is True or a == {}:
            return b
        if b is True or b == {} or a == b:
            return a
        return {"allOf": [a, b]}

    @staticmethod
    def apply_closed_objects(
        parts: list[Mapping[str, Any]], merged: dict[str, Any], path: str
    ) -> None:
        """A member with ``additionalProperties: false`` forbids the others' extra keys."""
        for part in parts:
            if part.get("additionalProperties") is False:
                allowed = set(part.get("properties", {}))
                props = merged.get("properties", {})
                merged["properties"] = {k: v for k, v in props.items() if k in allowed}
                for name in merged.get("required", []):
                    if name not in allowed:
                        raise GrammarError(
                            f"{path}: property {name!r} is required but an allOf member "
                            "forbids it (additionalProperties: false)"
                        )

    # -- objects --------------------------------------------------------------------

    def object(self, schema: Mapping[str, Any], path: str) -> str:
        props = schema.get("properties", {})
        if not isinstance(props, Mapping):
            raise GrammarError(f"{path}: 'properties' must be an object")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise GrammarError(f"{path}: 'required' must be a list of property names")
        additional = schema.get("additionalProperties", True)
        if not isinstance(additional, (bool, Mapping)):
            raise GrammarError(f"{path}: 'additionalProperties' must be a boolean or a schema")
        # Extra keys are generated only when asked for (or when nothing else is declared);
        # leaving them out when the schema merely allows them is stricter, never looser.
        generate_extras = additional is not False and (
            "additionalProperties" in schema or not props
        )

        members: list[tuple[str, bool]] = []  # (member rule, required)
        for name, sub in props.items():
            where = f"{path}/properties/{name}"
            if sub is False:
                if name in required:
                    raise GrammarError(f"{where}: required property has the schema `false`")
                continue
            members.append((self.member(name, self.visit(sub, where), where), name in required))
        for name in dict.fromkeys(required):
            if name not in props:
                if additional is False:
                    raise GrammarError(
                        f"{path}: required property {name!r} is not in 'properties' and "
                        "additionalProperties is false"
                    )
                value = self.visit(additional, f"{path}/additionalProperties")
                members.append((self.member(name, value, path), True))
        extra = None
        if generate_extras:
            value = self.visit(additional, f"{path}/additionalProperties")
            key = self.key_not_in([*props, *(r for r in required if r not in props)], path)
            ws = self.primitive("ws")
            extra = self.rule(f"{path}-extra", f'{key} {ws} ":" {ws} {value} {ws}')
        return self.rule(path, self.object_body(members, extra, path))

    def member(self, name: str, value: str, path: str) -> str:
        ws = self.primitive("ws")
        key = _json_literal(name)
        return self.rule(f"{path}-kv", f'{key} {ws} ":" {ws} {value} {ws}')

    def object_body(self, members: list[tuple[str, bool]], extra: str | None, path: str) -> str:
        """``{...}`` with the members in order: required ones always, optional ones maybe."""
        ws = self.primitive("ws")
        comma = f'"," {ws}'
        tails = [f"{comma} {m}" if req else f"( {comma} {m} )?" for m, req in members]
        if extra is not None:
            tails.append(f"( {comma} {extra} )*")
        alts = []
        for i, (m, req) in enumerate(members):
            alts.append(" ".join([m, *tails[i + 1 :]]))
            if req:
                break
        else:
            if extra is not None:
                alts.append(f"{extra} ( {comma} {extra} )*")
        all_optional = not any(req for _, req in members)
        if not alts:
            return f'"{{" {ws} "}}"'
        inner = " | ".join(alts)
        if len(alts) > 1 or all_optional:
            inner = f"( {inner} )" + ("?" if all_optional else "")
        return f'"{{" {ws} {inner} "}}"'

    def key_not_in(self, names: list[str], path: str) -> str:
        """A JSON string (quotes included) that is none of ``names``."""
        keychar = self.primitive("keychar")
        if not names:
            return self.rule("key", f'"\\"" {keychar}* "\\""')
        trie: dict[str, Any] = {}
        for name in names:
            node = trie
            for ch in name:
                node = node.setdefault(ch, {})
            node[""] = {}  # end marker
        quote = '"\\""'

        def node_rule(node: dict[str, Any]) -> str:
            # a key char can never be '"', a backslash or a control char (no escapes)
            children = [c for c in node if c and c not in '"\\' and ord(c) >= 0x20]
            alts = [] if "" in node else [quote]
            excluded = "".join(_class_char(c) for c in children)
            alts.append(f'[^"\\\\\\x00-\\x1f{excluded}] {keychar}* {quote}')
            for c in children:
                alts.append(f"{gbnf_literal(c)} {node_rule(node[c])}")
            return self.rule(f"{path}-other-key", " | ".join(alts))

        return self.rule(f"{path}-other-key", f"{quote} {node_rule(trie)}")

    # -- arrays ---------------------------------------------------------------------

    def array(self, schema: Mapping[str, Any], path: str) -> str:
        items = schema.get("items")
        prefix = schema.get("prefixItems", [])
        if isinstance(items, list):  # the draft-4 tuple form
            prefix, items = items, schema.get("additionalItems")
        if not isinstance(prefix, list):
            raise GrammarError(f"{path}: 'prefixItems' must be a list of schemas")
        lo = self.count(schema, "minItems", path) or 0
        hi = self.count(schema, "maxItems", path)
        if hi is not None and hi < lo:
            raise GrammarError(f"{path}: maxItems ({hi}) is below minItems ({lo})")
        if hi is not None and hi < len(prefix):
            raise GrammarError(f"{path}: maxItems below the number of prefixItems is not supported")
        ws = self.primitive("ws")
        parts = [
            f"{self.visit(sub, f'{path}/prefixItems/{i}')} {ws}" for i, sub in enumerate(prefix)
        ]
        extra_lo = max(0, lo - len(prefix))
        extra_hi = None if hi is None else hi - len(prefix)
        if items is False:
            if extra_lo > 0:
                raise GrammarError(f"{path}: minItems exceeds prefixItems but items is false")
            extra_hi = 0
        elif items is None:
            # not given: any items are allowed; after a tuple, generate only what minItems needs
            items = True
            if prefix:
                extra_hi = extra_lo
        seq = " ".join(p if i == 0 else f'"," {ws} {p}' for i, p in enumerate(parts))
        if extra_hi == 0:
            return self.rule(path, f'"[" {ws} {seq} "]"' if seq else f'"[" {ws} "]"')
        item = self.visit(items, f"{path}/items")
        element = self.rule(f"{path}-item", f"{item} {ws}")
        next_element = self.rule(f"{path}-next", f'"," {ws} {element}')
        if seq:
            body = f"{seq} {_repeat(next_element, extra_lo, extra_hi, path)}"
        else:
            more_hi = None if extra_hi is None else extra_hi - 1
            body = f"{element} {_repeat(next_element, max(0, extra_lo - 1), more_hi, path)}"
            if extra_lo == 0:
                body = f"( {body} )?"
        return self.rule(path, f'"[" {ws} {body} "]"')

    @staticmethod
    def count(schema: Mapping[str, Any], keyword: str, path: str) -> int | None:
        value = schema.get(keyword)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise GrammarError(f"{path}: {keyword!r} must be a non-negative integer, got {value!r}")
        return value

    # -- strings and numbers --------------------------------------------------------

    def string(self, schema: Mapping[str, Any], path: str) -> str:
        lo = self.count(schema, "minLength", path)
        hi = self.count(schema, "maxLength", path)
        fmt = schema.get("format")
        if fmt in _FORMATS:
            if lo is not None or hi is not None:
                raise GrammarError(
                    f"{path}: minLength/maxLength with format {fmt!r} is not supported"
                )
            return self.rule(f"{path}-{fmt}", f'"\\"" {self.primitive(fmt)} "\\""')
        if lo is None and hi is None:
            return self.primitive("string")
        lo = lo or 0
        if hi is not None and hi < lo:
            raise GrammarError(f"{path}: maxLength ({hi}) is below minLength ({lo})")
        char = self.primitive("char")
        return self.rule(path, f'"\\"" {_repeat(char, lo, hi, path)} "\\""')

    def number(self, schema: Mapping[str, Any], path: str, *, integer: bool) -> str:
        lo, hi = self.bounds(schema, path, integer=integer)
        # numbers have at most 16 digits here: bounds beyond them bound nothing (and would
        # make grammars with one nested group per digit)
        limit = 10**_NUMBER_DIGITS
        if (lo is not None and lo >= limit) or (hi is not None and hi <= -limit):
            raise GrammarError(
                f"{path}: bounds beyond {_NUMBER_DIGITS} digits are not supported "
                "(generated numbers have at most that many)"
            )
        lo = None if lo is not None and lo <= -limit else lo
        hi = None if hi is not None and hi >= limit else hi
        if lo is None and hi is None:
            return self.primitive("integer" if integer else "number")
        if lo is not None and hi is not None and lo > hi:
            raise GrammarError(f"{path}: no number lies between the minimum and the maximum")
        alts = _integer_range(lo, hi)
        if not integer:
            frac = '"." [0-9]{1,15}'
            # a fraction on a whole part I: I.F lies in (I, I + 1) or (-(I + 1), -I)
            top = None if hi is None else hi - 1
            if top is None or top >= max(lo or 0, 0):
                alts += [f"{a} {frac}" for a in _natural_range(max(lo or 0, 0), top)]
            neg_lo = max(0, -hi) if hi is not None else 0
            neg_hi = None if lo is None else -lo - 1
            if neg_hi is None or neg_hi >= neg_lo:
                alts += [f'"-" {a} {frac}' for a in _natural_range(neg_lo, neg_hi)]
        return self.rule(path, " | ".join(alts))

    @staticmethod
    def bounds(
        schema: Mapping[str, Any], path: str, *, integer: bool
    ) -> tuple[int | None, int | None]:
        """Whole-number bounds [lo, hi] from minimum/maximum and their exclusive forms."""
        result: list[int | None] = [None, None]
        for i, (incl, excl) in enumerate(
            (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum"))
        ):
            value, exclusive = schema.get(incl), schema.get(excl)
            if isinstance(exclusive, bool):  # draft 4: a flag that makes minimum exclusive
                value, exclusive = (None, value) if exclusive else (value, None)
            for v, is_excl in ((value, False), (exclusive, True)):
                if v is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise GrammarError(f"{path}: {excl if is_excl else incl!r} must be a number")
                if is_excl and not integer:
                    raise GrammarError(f"{path}: {excl!r} is only supported for integers")
                if not integer and not float(v).is_integer():
                    raise GrammarError(
                        f"{path}: {incl!r} {v} on a number: only whole-number bounds are supported"
                    )
                if i == 0:
                    bound = math.floor(v) + 1 if is_excl else math.ceil(v)
                    result[0] = bound if result[0] is None else max(result[0], bound)
                else:
                    bound = math.ceil(v) - 1 if is_excl else math.floor(v)
                    result[1] = bound if result[1] is None else min(result[1], bound)
        return result[0], result[1]
