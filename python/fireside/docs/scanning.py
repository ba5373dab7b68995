"""What the user added, expanded to the files to index, within bounds.

Folders are walked recursively; a symbolic link inside a folder is followed only when its
target stays inside that folder (so nothing outside what the user named is read) and each
folder is visited once (so link loops end). Hidden entries (names starting with ``.``),
unsupported formats and anything that is not a regular file are skipped and reported.
Files and globs named directly are taken as the user named them.
"""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass, field

from fireside.docs.readers import format_of

MAX_FILES = 100_000
"""The most files one collection indexes; further files are skipped and reported."""


@dataclass
class ScanResult:
    """Files to index (real path -> format) and ``(path, reason)`` of everything skipped."""

    files: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    max_files: int = MAX_FILES

    def add_file(self, real: str, shown: str) -> None:
        if real in self.files:
            return
        fmt = format_of(os.path.basename(real))
        if fmt is None:
            ext = os.path.splitext(real)[1]
            self.skipped.append((shown, f"unsupported file type ({ext or 'no extension'})"))
        elif len(self.files) >= self.max_files:
            self.skipped.append((shown, f"over the limit of {self.max_files} files"))
        else:
            self.files[real] = fmt


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(root: str, result: ScanResult) -> None:
    root_real = os.path.realpath(root)
    try:
        top = os.stat(root_real)
    except OSError as e:
        result.skipped.append((root, f"cannot read folder: {e.strerror or e}"))
        return
    seen = {(top.st_dev, top.st_ino)}
    stack = [root_real]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listing = sorted(entries, key=lambda entry: entry.name)
        except OSError as e:
            result.skipped.append((folder, f"cannot list folder: {e.strerror or e}"))
            continue
        if not listing:
            result.skipped.append((folder, "empty folder"))
        for entry in listing:
            path = entry.path
            if entry.name.startswith("."):
                result.skipped.append((path, "hidden file or folder"))
                continue
            try:
                if entry.is_symlink():
                    target = os.path.realpath(path)
                    if not _inside(target, root_real):
                        result.skipped.append((path, f"symbolic link to outside {root_real}"))
                        continue
                    info = os.stat(target)
                else:
                    target = path
                    info = entry.stat(follow_symlinks=False)
            except OSError as e:
                reason = "symbolic link loop" if e.errno == 40 else f"{e.strerror or e}"
                result.skipped.append((path, f"cannot follow: {reason}"))
                continue
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    result.skipped.append((path, "symbolic link loop (folder already visited)"))
                    continue
                seen.add(key)
                stack.append(target)
            elif stat.S_ISREG(info.st_mode):
                result.add_file(target, path)
            else:
                result.skipped.append((path, "not a regular file"))


def _one(path: str, result: ScanResult) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        result.skipped.append((path, "no longer exists"))
        return
    except OSError as e:
        result.skipped.append((path, f"cannot read: {e.strerror or e}"))
        return
    if stat.S_ISDIR(info.st_mode):
        _walk(path, result)
    elif stat.S_ISREG(info.st_mode):
        result.add_file(os.path.realpath(path), path)
    else:
        result.skipped.append((path, "not a regular file"))


def scan(roots: list[tuple[str, str]], *, max_files: int = MAX_FILES) -> ScanResult:
    """Expand ``(spec, kind)`` roots (kind ``"path"`` or ``"glob"``) to files."""
    result = ScanResult(max_files=max_files)
    for spec, kind in roots:
        if kind == "glob":
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                result.skipped.append((spec, "the pattern matches nothing"))
            for match in matches:
                _one(match, result)
        else:
            _one(spec, result)
    return result


def is_glob(text: str) -> bool:
    """Whether ``text`` is a glob pattern rather than a path."""
    return glob.has_magic(text)  # type: ignore[attr-defined]
