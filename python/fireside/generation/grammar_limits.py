"""The bounds on grammars and JSON schemas: untrusted input whose cost a stranger controls.

A GBNF grammar is checked in the native layer before llama.cpp parses it (text size,
nesting, repetition counts and their expansion), again once parsed (how many parse states
one position can open), and while it runs (how many parse states it tracks at once: an
ambiguous grammar can double them with every token). A JSON schema is bounded while it is
converted (values per ``enum``, subschemas, nesting), and the grammar it becomes is then
bounded like any other. Going over a limit raises :class:`~fireside.errors.GrammarError`
(a ``ValueError``) whose message names the limit; at run time it ends the generation.
"""

from __future__ import annotations

from fireside import _core

GRAMMAR_MAX_BYTES: int = _core.GRAMMAR_LIMITS["max_bytes"]
"""Bytes of GBNF text."""
GRAMMAR_MAX_NESTING: int = _core.GRAMMAR_LIMITS["max_nesting"]
"""Parentheses inside one another."""
GRAMMAR_MAX_REPETITION: int = _core.GRAMMAR_LIMITS["max_repetition"]
"""The counts ``n`` and ``m`` of a repetition ``x{n,m}``."""
GRAMMAR_MAX_EXPANSION: int = _core.GRAMMAR_LIMITS["max_expansion"]
"""Sum over all repetitions of (count + 1) x the repeated item's size in bytes."""
GRAMMAR_MAX_BRANCHING: int = _core.GRAMMAR_LIMITS["max_branching"]
"""Parse states one rule may open at one position (its alternatives, through rules that
may match nothing)."""
GRAMMAR_MAX_STATES: int = _core.GRAMMAR_LIMITS["max_states"]
"""Parse states a running grammar may track at once (the per-token work budget)."""

SCHEMA_MAX_ENUM_VALUES = 1024
"""Values in one ``enum``."""
SCHEMA_MAX_NODES = 4096
"""Subschemas one JSON schema may be converted through (``$ref`` targets count once)."""
SCHEMA_MAX_DEPTH = 64
"""Subschemas inside one another."""
