#!/usr/bin/env python3
"""Obtain the pinned llama.cpp source tree for the build.

The source is never committed. Resolution order:

1. ``FIRESIDE_LLAMA_CPP_DIR``: an existing llama.cpp checkout, used as is.
2. ``vendor/llama.cpp`` already holding the pinned tree (stamp file matches).
3. The extracted tree cached in the user cache directory (no network needed).
4. ``pip download`` of the pinned llama-cpp-python sdist, sha256-verified, and
   only its ``vendor/llama.cpp/`` member extracted (into the cache, then copied).

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
        done = subprocess.run(base + ["--no-build-isolation"], stdout=sys.stderr).returncode == 0
        if not done:
            done = subprocess.run(base, stdout=sys.stderr).returncode == 0
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


def resolve(dest: Path, pin: dict) -> Path:
    if env := os.environ.get("FIRESIDE_LLAMA_CPP_DIR"):
        path = Path(env).expanduser().resolve()
        if not is_llama_tree(path):
            raise FetchError(
                f"FIRESIDE_LLAMA_CPP_DIR={env} is not a llama.cpp source tree "
                "(no CMakeLists.txt and include/llama.h there)"
            )
        return path

    stamp = dest / STAMP
    if is_llama_tree(dest) and stamp.is_file() and stamp.read_text().strip() == pin["sha256"]:
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
    stamp.write_text(pin["sha256"] + "\n")
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
