#!/usr/bin/env python3
"""Obtain the pinned llama.cpp source tree for the build.

The source is never committed. Resolution order:

1. ``FIRESIDE_LLAMA_CPP_DIR``: an existing llama.cpp checkout, used as is.
2. ``vendor/llama.cpp`` already holding the pinned, patched tree (stamp file matches).
3. The extracted tree cached in the user cache directory (no network needed).
4. ``pip download`` of the pinned llama-cpp-python sdist, sha256-verified, and
   only its ``vendor/llama.cpp/`` member extracted (into the cache, then copied).

In cases 3 and 4 fireside's own patches (``vendor/patches/*.patch``, unified diffs
applied in name order) are applied to the copy in ``vendor/llama.cpp``; the cache
keeps the pristine tree.

The resolved directory is printed as the last line of stdout (CMake reads it).
Run with ``--help`` for options. Standard library only: it runs inside
isolated build environments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

STAMP = ".fireside-stamp"
PIN_FILE = "FIRESIDE_PIN.json"
PATCH_DIR = Path(__file__).resolve().parent / "patches"


class FetchError(RuntimeError):
    """The pinned source could not be obtained; the message says what is missing."""


def cache_root() -> Path:
    if env := os.environ.get("FIRESIDE_CACHE_DIR"):
        return Path(env)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "fireside"


def is_llama_tree(path: Path) -> bool:
    return (path / "CMakeLists.txt").is_file() and (path / "include" / "llama.h").is_file()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_archive(pin: dict, downloads: Path) -> Path:
    """Return the pinned sdist, downloading it with pip when it is not cached."""
    archive = downloads / pin["filename"]
    if archive.is_file() and sha256_of(archive) == pin["sha256"]:
        return archive
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        spec = f"{pin['package']}=={pin['version']}"
        base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", pin["package"]]
        base += ["--disable-pip-version-check", "-d", tmp, spec]
        print(f"fireside: downloading {spec} (pinned llama.cpp source) with pip", file=sys.stderr)
        # Without build isolation pip skips installing the sdist's build tools just to
        # read its metadata; fall back to the default if that fails.
        done = (
            subprocess.run(
                base + ["--no-build-isolation"], check=False, stdout=sys.stderr
            ).returncode
            == 0
        )
        if not done:
            done = subprocess.run(base, check=False, stdout=sys.stderr).returncode == 0
        fetched = Path(tmp) / pin["filename"]
        if not done or not fetched.is_file():
            raise FetchError(
                f"could not download {spec} with pip (no package index reachable?). "
                f"Either set FIRESIDE_LLAMA_CPP_DIR to a llama.cpp checkout, or put "
                f"{pin['filename']} (sha256 {pin['sha256']}) into {downloads}"
            )
        actual = sha256_of(fetched)
        if actual != pin["sha256"]:
            raise FetchError(
                f"{pin['filename']} has sha256 {actual}, expected {pin['sha256']}: refusing to build from it"
            )
        os.replace(fetched, archive)
    return archive


def extract_member(archive: Path, member: str, target: Path) -> None:
    """Extract only ``member`` (a directory prefix) of ``archive`` into ``target``."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = []
            for info in tar.getmembers():
                if not info.name.startswith(member) or info.name == member.rstrip("/"):
                    continue
                info.name = info.name[len(member) :]
                if info.name:
                    members.append(info)
            if not members:
                raise FetchError(f"{archive.name} has no member {member}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, members=members, filter="data")
            else:  # Python < 3.10.12 / 3.11.4: reject unsafe names ourselves
                for info in members:
                    if info.name.startswith("/") or ".." in Path(info.name).parts:
                        raise FetchError(f"unsafe path in {archive.name}: {info.name}")
                tar.extractall(staging, members=members)
        try:
            staging.rename(target)
        except OSError:
            if not is_llama_tree(target):  # another build won the race otherwise
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


def stamp_text(pin: dict) -> str:
    """What the stamp of a tree holding the pinned source with today's patches says."""
    digest = hashlib.sha256()
    for patch in patches():
        digest.update(patch.name.encode() + b"\0" + patch.read_bytes())
    return f"{pin['sha256']} patches {digest.hexdigest()[:16]}"


def apply_patch(patch: Path, tree: Path) -> None:
    """Apply a unified diff (``a/``/``b/`` prefixes) whose hunks must match exactly."""
    target: Path | None = None
    lines = patch.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            target = tree / name.split("/", 1)[1]
            if not target.is_file():
                raise FetchError(f"{patch.name}: {target} does not exist")
            i += 1
            continue
        if not line.startswith("@@"):
            i += 1
            continue
        if target is None:
            raise FetchError(f"{patch.name}: a hunk comes before any +++ line")
        old: list[str] = []
        new: list[str] = []
        i += 1
        while i < len(lines) and lines[i][:1] in (" ", "-", "+", ""):
            if lines[i].startswith(("--- ", "+++ ")):
                break
            body = lines[i][1:]
            if lines[i][:1] in (" ", ""):
                old.append(body)
                new.append(body)
            elif lines[i][0] == "-":
                old.append(body)
            else:
                new.append(body)
            i += 1
        text = target.read_text()
        before = "\n".join(old) + "\n"
        if text.count(before) != 1:
            raise FetchError(
                f"{patch.name} does not apply to {target.relative_to(tree)} "
                f"(a hunk matches {text.count(before)} places, expected 1)"
            )
        target.write_text(text.replace(before, "\n".join(new) + "\n"))


def resolve(dest: Path, pin: dict) -> Path:
    if env := os.environ.get("FIRESIDE_LLAMA_CPP_DIR"):
        path = Path(env).expanduser().resolve()
        if not is_llama_tree(path):
            raise FetchError(
                f"FIRESIDE_LLAMA_CPP_DIR={env} is not a llama.cpp source tree "
                "(no CMakeLists.txt and include/llama.h there)"
            )
        print(
            f"fireside: using {path} as is, without fireside's patches ({PATCH_DIR}); "
            "for example a lost RPC server then aborts the process",
            file=sys.stderr,
        )
        return path

    stamp = dest / STAMP
    expected = stamp_text(pin)
    if is_llama_tree(dest) and stamp.is_file() and stamp.read_text().strip() == expected:
        return dest

    cached = cache_root() / "llama.cpp-src" / pin["sha256"][:16]
    if not is_llama_tree(cached):
        cached.parent.mkdir(parents=True, exist_ok=True)
        archive = verified_archive(pin, cache_root() / "downloads")
        extract_member(archive, pin["member"], cached)
        # The archive is not needed once its tree is cached.
        archive.unlink(missing_ok=True)

    print(f"fireside: copying pinned llama.cpp from {cached} into {dest}", file=sys.stderr)
    for child in dest.iterdir() if dest.exists() else []:
        if child.name != PIN_FILE:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(cached, dest, dirs_exist_ok=True, symlinks=True)
    for patch in patches():
        print(f"fireside: applying {patch.name}", file=sys.stderr)
        apply_patch(patch, dest)
    stamp.write_text(expected + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=here / "llama.cpp", help="where the tree goes")
    parser.add_argument("--pin", type=Path, default=here / "llama.cpp" / PIN_FILE, help="pin file")
    args = parser.parse_args(argv)
    try:
        pin = json.loads(args.pin.read_text())
        print(resolve(args.dest.resolve(), pin))
    except (FetchError, OSError) as exc:
        print(f"fireside: cannot obtain the llama.cpp source: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
