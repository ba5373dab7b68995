"""Failures shown to a person as one line, and how other exceptions become one."""

from __future__ import annotations


class CLIError(Exception):
    """A failure with a message meant for the person at the terminal (no traceback)."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe(error: BaseException) -> str:
    """One readable line for an exception that ended a command."""
    from fireside.errors import FiresideError

    if isinstance(error, (CLIError, FiresideError)):
        return str(error)
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"no such file: {error.filename}"
    if isinstance(error, IsADirectoryError) and error.filename:
        return f"{error.filename} is a directory, not a file"
    if isinstance(error, PermissionError) and error.filename:
        return f"permission denied: {error.filename}"
    if isinstance(error, (OSError, ValueError, TypeError, LookupError)):
        return str(error) or type(error).__name__
    return f"unexpected {type(error).__name__}: {error}"
