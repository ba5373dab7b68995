"""Options of the whole invocation (``fireside --verbose ...``), read by any command."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    verbose: bool = False


settings = Settings()
"""One per process: set by the command tree's callback before a command runs."""
