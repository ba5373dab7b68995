"""Source code, recognised by extension: one section; chunks break at blank lines."""

from __future__ import annotations

from fireside.docs.locations import Parsed
from fireside.docs.readers.base import section, text_of

CODE_EXTENSIONS = frozenset(
    [
        ".py",
        ".pyi",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".cxx",
        ".hpp",
        ".hh",
        ".cs",
        ".java",
        ".kt",
        ".scala",
        ".go",
        ".rs",
        ".swift",
        ".m",
        ".mm",
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".rb",
        ".php",
        ".pl",
        ".pm",
        ".lua",
        ".r",
        ".jl",
        ".hs",
        ".ml",
        ".ex",
        ".exs",
        ".erl",
        ".sh",
        ".bash",
        ".zsh",
        ".fish",
        ".ps1",
        ".sql",
        ".css",
        ".scss",
        ".toml",
        ".yaml",
        ".yml",
        ".ini",
        ".cfg",
        ".json",
        ".cmake",
        ".mk",
        ".tex",
        ".el",
        ".vim",
        ".dart",
        ".zig",
        ".nim",
    ]
)
"""Extensions read as source code (lower case)."""


def read_code(data: bytes) -> Parsed:
    """A source file: its lines, with their numbers."""
    lines = text_of(data).split("\n")
    one = section(lines, 1)
    return Parsed("code", [one] if one else [])
