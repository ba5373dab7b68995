"""JSON Schema to GBNF by llama.cpp's own converter, behind a thin pre-check.

The conversion is llama.cpp's (``common/json-schema-to-grammar.cpp``, the one llama-server
uses for ``response_format``), built from the pinned source. That converter skips what it
cannot express; fireside refuses those schemas instead, so that every output validates:
the pre-check here names each keyword (or combination) the converter would drop, and
bounds the schema's size; llama.cpp then refuses what it cannot read, and a ``pattern`` it
could enforce only in part.

Supported, as in llama-server: ``type`` (one or a list), ``enum``, ``const``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``prefixItems`` (or
``items`` as a list), ``minItems``, ``maxItems``, ``minLength``, ``maxLength``,
``pattern`` (anchored with ``^...$``, the regular-expression subset llama.cpp converts),
``format`` (``date``, ``time``, ``date-time``, ``uuid``; others are annotations),
``minimum``/``maximum`` and their exclusive forms on integers, ``anyOf``, ``oneOf``
(treated as ``anyOf``), ``allOf`` of objects, and local ``$ref`` (``#/...``), recursion
included. Objects list their required properties first, in the declared order.

A schema is untrusted input (:mod:`fireside.generation.grammar_limits`): at most 1024
values per ``enum``, 4096 subschemas, 64 levels of nesting, counts up to the grammar
repetition limit, and a grammar within the GBNF limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fireside import _core
from fireside.errors import GrammarError
from fireside.generation.grammar_limits import (
    GRAMMAR_MAX_BYTES,
    GRAMMAR_MAX_REPETITION,
    SCHEMA_MAX_DEPTH,
    SCHEMA_MAX_ENUM_VALUES,
    SCHEMA_MAX_NODES,
)

_UNSUPPORTED = frozenset(
    {
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
    }
)
"""Validation keywords llama.cpp's converter does not enforce."""

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

_VALIDATION = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
    }
    | _UNSUPPORTED
)
"""The keywords that constrain a value; any other keyword is an annotation."""

_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4"})
_FORMATS |= {"uuid5"}

_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength")


def json_schema_to_grammar(schema: Mapping[str, Any] | bool) -> str:
    """Return a GBNF grammar (root rule ``root``) for JSON that satisfies ``schema``.

    ``{}`` and ``True`` accept any JSON value. Raises
    :class:`~fireside.errors.GrammarError` naming the keyword and location (a JSON
    pointer such as ``#/properties/age``) of anything invalid or unsupported.
    """
    normalized = check_json_schema(schema)
    try:
        text = json.dumps(normalized, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise GrammarError(f"the JSON schema is not JSON: {e}") from None
    grammar = _core.json_schema_to_grammar(text)
    size = len(grammar.encode("utf-8"))
    if size > GRAMMAR_MAX_BYTES:
        raise GrammarError(
            f"the grammar for this JSON schema would be {size} bytes; at most "
            f"{GRAMMAR_MAX_BYTES} are allowed (grammar limit max_bytes)"
        )
    return grammar


def check_json_schema(schema: Mapping[str, Any] | bool) -> dict[str, Any]:
    """Refuse what llama.cpp's converter would not enforce; return the schema to convert.

    The result is ``schema`` with the boolean subschemas ``true`` written as ``{}`` (the
    converter reads only objects). Raises :class:`~fireside.errors.GrammarError`.
    """
    if schema is True:
        return {}
    if not isinstance(schema, Mapping):
        raise GrammarError(f"a JSON schema must be an object or a boolean, got {schema!r}")
    return _Check(schema).run()


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    """The ``type`` names of a schema, or ``None`` when it has no ``type``."""
    t = schema.get("type")
    if t is None:
        return None
    return {t} if isinstance(t, str) else {x for x in t if isinstance(x, str)}


def _has_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float))
    kinds: dict[str, type] = {"string": str, "object": dict, "array": list}
    return name in kinds and isinstance(value, kinds[name])


class _Check:
    """One walk over a schema (and the targets of its ``$ref``s)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.n_nodes = 0
        self.refs: dict[str, Any] = {}
        self.ref_nodes: list[dict[str, Any]] = []  # the converted subschemas with a $ref
        self.root_referenced = False  # some "$ref" is "#"

    def run(self) -> dict[str, Any]:
        try:
            out = self.visit(self.root, "#", 0)
        except RecursionError:
            raise GrammarError("the JSON schema is nested too deeply") from None
        assert isinstance(out, dict)
        if self.root_referenced:
            # llama.cpp resolves only "#/..." references: the root moves under $defs.
            for node in self.ref_nodes:
                node["$ref"] = _ROOT_REF + node["$ref"][1:]
            return {"$defs": {_ROOT_NAME: out}, "$ref": _ROOT_REF}
        return out

    def fail(self, path: str, what: str) -> GrammarError:
        return GrammarError(f"{path}: {what}")

    def visit(self, schema: Any, path: str, depth: int) -> Any:
        self.n_nodes += 1
        if self.n_nodes > SCHEMA_MAX_NODES:
            raise self.fail(
                path,
                f"the JSON schema has more than {SCHEMA_MAX_NODES} subschemas (schema limit max_nodes)",
            )
        if depth >= SCHEMA_MAX_DEPTH:
            raise GrammarError(
                f"the JSON schema is nested too deeply: more than {SCHEMA_MAX_DEPTH} levels of "
                "subschemas (schema limit max_depth)"
            )
        if schema is True:
            return {}
        if schema is False:
            raise self.fail(path, "the schema `false` matches nothing")
        if not isinstance(schema, Mapping):
            raise self.fail(path, f"a schema must be an object or a boolean, got {schema!r}")
        self.check_keywords(schema, path)
        out = dict(schema)
        for keyword in _BOUNDS:
            if _vacuous_bound(keyword, schema.get(keyword)):
                del out[keyword]
        pattern = _enum_pattern(schema.get("enum"))
        if pattern is not None:
            return {"type": "string", "pattern": pattern}
        for key in ("properties", "$defs", "definitions"):
            if isinstance(schema.get(key), Mapping):
                out[key] = {
                    name: self.visit(sub, f"{path}/{key}/{name}", depth + 1)
                    for name, sub in schema[key].items()
                }
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            if isinstance(schema.get(key), list):
                out[key] = [
                    self.visit(sub, f"{path}/{key}/{i}", depth + 1)
                    for i, sub in enumerate(schema[key])
                ]
        items = schema.get("items")
        if items is False and "prefixItems" in schema:
            # a closed tuple: llama.cpp generates exactly the prefixItems anyway
            del out["items"]
            items = None
        if isinstance(items, list):
            out["items"] = [
                self.visit(sub, f"{path}/items/{i}", depth + 1) for i, sub in enumerate(items)
            ]
        elif items is not None:
            out["items"] = self.visit(items, f"{path}/items", depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            out["additionalProperties"] = self.visit(
                extra, f"{path}/additionalProperties", depth + 1
            )
        ref = schema.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            self.ref_nodes.append(out)
            self.root_referenced |= ref == "#"
        if isinstance(ref, str) and ref.startswith("#/") and ref not in self.refs:
            self.refs[ref] = None  # a cycle back to it stops here
            target = self.resolve(ref, path)
            if not isinstance(target, Mapping):
                raise self.fail(path, f"$ref {ref} does not point to a schema object")
            self.refs[ref] = self.visit(target, ref, depth + 1)
        return out

    def resolve(self, ref: str, path: str) -> Any:
        node: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.fail(path, f"cannot resolve $ref {ref}")
        return node

    def check_keywords(self, schema: Mapping[str, Any], path: str) -> None:
        keys = {k for k in schema if k in _VALIDATION}
        for keyword in sorted(keys & _UNSUPPORTED):
            raise self.fail(path, f"the {keyword!r} keyword is not supported")
        types = _types(schema)
        if "$ref" in keys and keys - {"$ref"}:
            raise self.fail(
                path, f"keywords beside $ref are not supported: {_names(keys - {'$ref'})}"
            )
        alternatives = keys & {"anyOf", "oneOf"}
        if len(alternatives) == 2:
            raise self.fail(path, "anyOf and oneOf in one schema are not supported")
        if alternatives and keys - alternatives - {"type"}:
            dropped = keys - alternatives - {"type"}
            raise self.fail(
                path, f"keywords beside {_names(alternatives)} are not supported: {_names(dropped)}"
            )
        if alternatives:
            return
        for keyword in ("const", "enum"):
            if keyword in keys:
                self.check_literals(schema, keyword, keys, types, path)
                return
        if "allOf" in keys:
            self.check_all_of(schema, keys, types, path)
            return
        self.check_counts(schema, path)
        if keys & set(_BOUNDS):
            if types is None or "number" in types or "integer" not in types:
                raise self.fail(
                    path,
                    f"{_names(keys & set(_BOUNDS))} on a number is not supported: llama.cpp's "
                    "converter bounds only integers ({'type': 'integer'})",
                )
            for keyword in sorted(keys & set(_BOUNDS)):
                value = schema[keyword]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise self.fail(path, f"{keyword!r} must be a number, got {value!r}")
                if abs(value) >= _BOUND_DIGITS_LIMIT and not _vacuous_bound(keyword, value):
                    raise self.fail(
                        path,
                        f"{keyword} {value}: bounds of 16 digits or more are not supported "
                        "(llama.cpp's integers have at most 16 digits)",
                    )
            if {"minimum", "exclusiveMinimum"} <= keys or {"maximum", "exclusiveMaximum"} <= keys:
                raise self.fail(
                    path, "give minimum or exclusiveMinimum (maximum or exclusiveMaximum), not both"
                )
        if "pattern" in keys and keys & {"minLength", "maxLength", "format"}:
            dropped = keys & {"minLength", "maxLength", "format"}
            raise self.fail(path, f"{_names(dropped)} beside pattern are not supported")
        if schema.get("format") in _FORMATS and keys & {"minLength", "maxLength"}:
            raise self.fail(
                path, f"{_names(keys & {'minLength', 'maxLength'})} beside format are not supported"
            )
        if "prefixItems" in keys and "items" in keys and schema["items"] is not False:
            raise self.fail(
                path, "items beside prefixItems is not supported (give prefixItems alone)"
            )
        tuple_items = schema.get("prefixItems", schema.get("items"))
        if isinstance(tuple_items, list):
            n = len(tuple_items)
            if not schema.get("minItems", 0) <= n <= schema.get("maxItems", n):
                raise self.fail(
                    path, f"a tuple of {n} items outside minItems/maxItems is not supported"
                )
        self.check_required(schema, path)

    def check_counts(self, schema: Mapping[str, Any], path: str) -> None:
        for keyword in _COUNTS:
            value = schema.get(keyword)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.fail(path, f"{keyword!r} must be a non-negative integer, got {value!r}")
            if value > GRAMMAR_MAX_REPETITION:
                raise self.fail(
                    path,
                    f"{keyword} {value} is above {GRAMMAR_MAX_REPETITION} "
                    "(grammar limit max_repetition)",
                )

    def check_required(self, schema: Mapping[str, Any], path: str) -> None:
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        if not isinstance(required, list) or not isinstance(properties, Mapping):
            return
        for name in required:
            if isinstance(name, str) and name not in properties:
                raise self.fail(
                    path,
                    f"required property {name!r} is not in properties (llama.cpp's "
                    "converter generates only declared properties)",
                )

    def check_literals(
        self,
        schema: Mapping[str, Any],
        keyword: str,
        keys: set[str],
        types: set[str] | None,
        path: str,
    ) -> None:
        dropped = keys - {keyword, "type"}
        if dropped:
            raise self.fail(path, f"keywords beside {keyword} are not supported: {_names(dropped)}")
        values = [schema["const"]] if keyword == "const" else schema["enum"]
        if not isinstance(values, list):
            return  # llama.cpp names it
        if len(values) > SCHEMA_MAX_ENUM_VALUES:
            raise self.fail(
                path,
                f"the enum has {len(values)} values; at most {SCHEMA_MAX_ENUM_VALUES} are "
                "allowed (schema limit max_enum_values)",
            )
        if types is not None:
            for value in values:
                if not any(_has_type(value, t) for t in types):
                    raise self.fail(
                        path, f"{keyword} value {value!r} is not of type {_names(types)}"
                    )

    def check_all_of(
        self, schema: Mapping[str, Any], keys: set[str], types: set[str] | None, path: str
    ) -> None:
        if keys - {"allOf", "type"} or (types is not None and types != {"object"}):
            raise self.fail(
                path,
                "allOf is supported only for objects, alone: not beside "
                f"{_names((keys - {'allOf'}) or {'type'})}",
            )
        members = schema.get("allOf")
        if not isinstance(members, list):
            return
        for i, member in enumerate(members):
            target = member
            if isinstance(member, Mapping) and isinstance(member.get("$ref"), str):
                target = self.resolve(member["$ref"], f"{path}/allOf/{i}")
            ok = isinstance(target, Mapping) and (
                "properties" in target or _types(target) == {"object"}
            )
            if ok and isinstance(target, Mapping):
                ok = not (
                    {k for k in target if k in _VALIDATION}
                    - {"type", "properties", "required", "additionalProperties"}
                )
            if not ok:
                raise self.fail(
                    f"{path}/allOf/{i}",
                    "allOf members must be objects with properties (llama.cpp's converter "
                    "merges only their properties)",
                )


_BOUND_DIGITS_LIMIT = 10**15
_INTEGER_LIMIT = 10**16  # llama.cpp generates integers of at most 16 digits


def _vacuous_bound(keyword: str, value: Any) -> bool:
    """Whether an integer bound excludes nothing llama.cpp could generate."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if keyword in ("minimum", "exclusiveMinimum"):
        return value <= -_INTEGER_LIMIT
    return value >= _INTEGER_LIMIT


_ROOT_NAME = "fireside-root"
_ROOT_REF = f"#/$defs/{_ROOT_NAME}"

_REGEX_SPECIAL = frozenset("^$.[]()|{}*+?")
_PATTERN_MAX_GROUPS = 90
"""Under llama.cpp's limit on groups inside one another in a pattern (100)."""


def _enum_pattern(values: Any) -> str | None:
    """An anchored pattern matching exactly ``values``, all strings, as a prefix tree.

    llama.cpp writes an ``enum`` as one alternative per value: values that share a
    beginning then cost the grammar matcher one parse state each, and past a few dozen
    the per-token budget (max_checks) runs out. Its ``pattern`` conversion keeps the
    tree's shape: one parse state per distinct next character. ``None`` when a value
    needs JSON escapes (which llama.cpp's patterns do not write) or is empty, or the tree
    is too deep for a pattern.
    """
    if not isinstance(values, list) or len(values) < 2:
        return None
    if not all(isinstance(v, str) and v for v in values):
        return None
    if any(c in '"\\' or ord(c) < 0x20 for v in values for c in v):
        return None
    end = ""
    trie: dict[str, Any] = {}
    for value in values:
        node = trie
        for ch in value:
            node = node.setdefault(ch, {})
        node[end] = {}

    def emit(node: dict[str, Any], depth: int) -> str | None:
        out = []
        while len(node) == 1 and end not in node:  # a run without branches
            ((ch, node),) = node.items()
            out.append("\\" + ch if ch in _REGEX_SPECIAL else ch)
        branches = [ch for ch in sorted(node) if ch != end]
        if not branches:
            return "".join(out)
        if depth >= _PATTERN_MAX_GROUPS:
            return None
        alts = []
        for ch in branches:
            rest = emit(node[ch], depth + 1)
            if rest is None:
                return None
            alts.append(("\\" + ch if ch in _REGEX_SPECIAL else ch) + rest)
        return "".join(out) + "(" + "|".join(alts) + (")?" if end in node else ")")

    body = emit(trie, 0)
    return None if body is None else f"^{body}$"


def _names(keys: set[str]) -> str:
    return ", ".join(sorted(keys))
