"""The one place that decides whether a path built from outside input is safe.

Names, URLs, Hub listings, ``owner/repo:QUANT`` choices and metadata all come from
strangers, and every path the hub layer derives from them is built here, in two steps
(the idea of Python's ``tarfile`` data filter, PEP 706):

1. each part is checked on its own by :func:`component` (one file or folder name:
   no separator, no ``.``/``..``, no NUL or control character, no drive or stream
   colon, no Windows device name, at most :data:`MAX_COMPONENT_BYTES`), and a path
   inside a repository by :func:`relative_parts` (at most :data:`MAX_DEPTH` parts,
   :data:`MAX_RELATIVE_CHARS` characters); a URL's last segment by
   :func:`url_file_name`, which checks every stage of percent-decoding so a name
   encoded twice (``..%252F``) cannot reappear as a path later;
2. the joined path is checked by :func:`inside` to stay within its root after
   ``resolve()`` (a folder in the store that is a symlink to elsewhere is refused).

Violations raise :class:`UnsafePathError` (a ``ValueError``) naming what was wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

MAX_COMPONENT_BYTES = 200
"""The longest file or folder name accepted, in UTF-8 bytes. File systems allow 255;
the store adds suffixes of its own (``.<tag>.incomplete``, ``.fireside.json``)."""

MAX_DEPTH = 16
"""The most parts a path inside a repository may have."""

MAX_RELATIVE_CHARS = 1024
"""The longest path inside a repository accepted, in characters."""

_DECODE_ROUNDS = 4
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WINDOWS_DEVICES = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)


class UnsafePathError(ValueError):
    """A name or path from outside input would leave its folder, or cannot be stored.

    ``reason`` is the bare reason (``"it contains a path separator"``), without the name.
    """

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _why_unsafe(part: str) -> str | None:
    if not part:
        return "it is empty"
    if part in (".", ".."):
        return f"{part!r} is a relative folder reference"
    if "\x00" in part:
        return "it contains a NUL character"
    if "/" in part or "\\" in part:
        return "it contains a path separator"
    if ":" in part:
        return "it contains ':' (a drive or stream name)"
    if _CONTROL.search(part):
        return "it contains a control character"
    if part[-1] in ". ":
        return "it ends with a dot or a space"
    if _WINDOWS_DEVICES.fullmatch(part):
        return "it is a reserved device name"
    try:
        size = len(part.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid text (a lone surrogate)"
    if size > MAX_COMPONENT_BYTES:
        return f"it is {size} bytes long (at most {MAX_COMPONENT_BYTES})"
    return None


def component(part: str, *, what: str) -> str:
    """``part`` if it is safe as one file or folder name, else :class:`UnsafePathError`.

    ``what`` says where the name came from, for the message.
    """
    if not isinstance(part, str):
        raise UnsafePathError(f"{what}: a name must be text, got {type(part).__name__}")
    why = _why_unsafe(part)
    if why is not None:
        raise UnsafePathError(f"{what}: {part[:80]!r} cannot be used as a file name ({why})")
    return part


def relative_parts(path: str, *, what: str) -> list[str]:
    """The parts of a ``/``-separated path inside a repository, each one checked."""
    if not isinstance(path, str):
        raise UnsafePathError(f"{what}: a path must be text, got {type(path).__name__}")
    why = None
    parts = path.split("/")
    if len(path) > MAX_RELATIVE_CHARS:
        why = f"it is {len(path)} characters long (at most {MAX_RELATIVE_CHARS})"
    elif path.startswith(("/", "\\")):
        why = "it is an absolute path"
    elif len(parts) > MAX_DEPTH:
        why = f"it has {len(parts)} parts (at most {MAX_DEPTH})"
    else:
        for part in parts:
            if (bad := _why_unsafe(part)) is not None:
                why = f"the part {part[:80]!r}: {bad}"
                break
    if why is not None:
        raise UnsafePathError(
            f"{what}: {path[:120]!r} is not a safe path inside a repository ({why})", reason=why
        )
    return parts


def url_file_name(segment: str, *, what: str) -> str:
    """The file name a URL's last path segment stands for (percent-decoded once).

    Every further round of decoding must be a safe name too: ``..%252F`` decodes to
    ``..%2F`` (harmless alone) but to ``../`` once more, and is refused.
    """
    try:
        name = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise UnsafePathError(
            f"{what}: the URL's file name {segment[:80]!r} is not valid UTF-8 once decoded"
        ) from None
    stage = name
    for _ in range(_DECODE_ROUNDS):
        why = _why_unsafe(stage)
        if why is not None and stage is name:
            raise UnsafePathError(
                f"{what}: the URL's file name decodes to {name[:80]!r}, which cannot be "
                f"used as a file name ({why})"
            )
        if why is not None:
            raise UnsafePathError(
                f"{what}: the URL's file name {segment[:80]!r} is encoded more than once "
                f"and decodes to {stage[:80]!r}, which is not a safe file name ({why})"
            )
        following = unquote(stage)
        if following == stage:
            return name
        stage = following
    raise UnsafePathError(f"{what}: the URL's file name {segment[:80]!r} is encoded too many times")


def inside(root: Path, path: Path, *, what: str) -> Path:
    """``path`` unchanged if it lies within ``root`` once both are resolved.

    The folder that holds ``path`` is resolved (symlinks followed) and must be ``root``
    or below it; the last part must be a plain name. A symlink as the last part is the
    store's own entry: deleting it removes the link, never what it points to.
    """
    name = path.name
    if name in ("", ".", ".."):
        raise UnsafePathError(f"{what}: {str(path)[:200]!r} does not name a file")
    try:
        base = root.resolve()
        folder = path.parent.resolve()
    except (OSError, RuntimeError) as e:
        raise UnsafePathError(f"{what}: {str(path)[:200]!r} cannot be resolved ({e})") from e
    if folder != base and base not in folder.parents:
        raise UnsafePathError(f"{what}: {str(path)[:200]!r} is outside {base}")
    return path
