"""Downloads through huggingface_hub against a local fake Hub (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fireside.errors import Cancelled, DownloadError, ModelNotFoundError, OfflineError
from fireside.hub import (
    InsufficientDiskSpace,
    list_models,
    pull,
    remove,
    resolve_model,
    set_offline,
    store,
)

from .conftest import store_files
from .fakehub import FakeHub

REPO = "acme/tiny-GGUF"
FILE = "tiny-Q4_0.gguf"
NAME = f"hf:{REPO}/{FILE}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def final_path() -> Path:
    return store.hub_path(REPO, FILE)


def leftovers(cache: Path) -> list[str]:
    """Model-like files left in the store: nothing may sit under a final *.gguf name."""
    return [p.name for p in store_files(cache) if p.name.endswith(".gguf")]


def test_download_through_the_hub_protocol(fake_hub: FakeHub, small_gguf: bytes) -> None:
    fake_hub.add(REPO, FILE, small_gguf)
    path = resolve_model(NAME, progress=False)
    assert path == final_path()
    assert path.read_bytes() == small_gguf
    record = store.read_record(path)
    assert record is not None and record["sha256"] == sha256(small_gguf)
    assert record["name"] == NAME and record["source"] == "hub"
    # one metadata request to the Hub, one transfer from the "CDN" on another origin
    assert [r.method for r in fake_hub.requests(contains="/resolve/")] == ["HEAD"]
    (get,) = fake_hub.requests("GET", "/cdn/")
    assert get.range is None
    assert get.headers["host"].startswith("localhost:")

    # a model on disk is used with no network access at all
    before = len(fake_hub.log)
    assert resolve_model(NAME) == path
    assert len(fake_hub.log) == before


def test_the_hub_token_is_not_sent_to_the_cdn(
    fake_hub: FakeHub, small_gguf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_fireside_test_token")
    fake_hub.add(REPO, FILE, small_gguf)
    resolve_model(NAME, progress=False)
    (head,) = fake_hub.requests("HEAD", "/resolve/")
    assert head.headers["authorization"] == "Bearer hf_fireside_test_token"
    (get,) = fake_hub.requests("GET", "/cdn/")
    assert "authorization" not in get.headers
    assert "fireside" in get.headers["user-agent"]


def test_a_transfer_cut_halfway_resumes_with_a_range_request(
    fake_hub: FakeHub, large_gguf: bytes
) -> None:
    fake_hub.add(REPO, FILE, large_gguf)
    fake_hub.faults.cut_after["/cdn/"] = 12 * 1024 * 1024
    path = resolve_model(NAME, progress=False)
    assert sha256(path.read_bytes()) == sha256(large_gguf)
    gets = fake_hub.requests("GET", "/cdn/")
    assert len(gets) == 2
    assert gets[0].range is None
    # every byte received before the cut was kept: the next request starts right there
    assert gets[1].range == f"bytes={12 * 1024 * 1024}-"


_CHILD = """
import sys
from fireside.hub import pull
print(pull(sys.argv[1], progress=False), flush=True)
"""


def _spawn_pull(name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_download_resumes_in_the_next_process(
    fake_hub: FakeHub, large_gguf: bytes, isolated_hub: Path
) -> None:
    fake_hub.add(REPO, FILE, large_gguf)
    fake_hub.faults.hang_after["/cdn/"] = 11 * 1024 * 1024
    child = _spawn_pull(NAME)
    try:
        partials = lambda: [p for p in store_files(isolated_hub) if p.name.endswith(".incomplete")]
        _wait_for(lambda: any(p.stat().st_size >= 10 * 1024 * 1024 for p in partials()))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert not final_path().exists()
    fake_hub.faults.hang_after.clear()
    (partial,) = partials()
    kept = partial.stat().st_size

    path = pull(NAME, progress=False)
    assert sha256(path.read_bytes()) == sha256(large_gguf)
    gets = fake_hub.requests("GET", "/cdn/")
    assert gets[-1].range == f"bytes={kept}-"
    assert [p for p in store_files(isolated_hub) if p.name.endswith(".incomplete")] == []


def test_a_corrupted_payload_is_rejected_and_removed(
    fake_hub: FakeHub, small_gguf: bytes, isolated_hub: Path
) -> None:
    corrupt = bytearray(small_gguf)
    corrupt[len(corrupt) // 2] ^= 0xFF
    fake_hub.add(REPO, FILE, small_gguf, payload=bytes(corrupt))
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        resolve_model(NAME, progress=False)
    assert info.value.expected_sha256 == sha256(small_gguf)
    assert info.value.actual_sha256 == sha256(bytes(corrupt))
    assert info.value.expected_sha256 in str(info.value)
    assert info.value.actual_sha256 in str(info.value)
    assert leftovers(isolated_hub) == []
    assert [p for p in store_files(isolated_hub) if ".incomplete" in p.name] == []


def test_a_file_that_is_not_gguf_is_rejected(fake_hub: FakeHub, isolated_hub: Path) -> None:
    page = b"<!doctype html><title>Sign in</title>" + b" " * 1000
    fake_hub.add(REPO, FILE, page, lfs=False)  # no LFS sha256 to check against
    with pytest.raises(DownloadError, match="did not send a GGUF file"):
        resolve_model(NAME, progress=False)
    assert leftovers(isolated_hub) == []


def test_offline_makes_no_request(fake_hub: FakeHub, small_gguf: bytes) -> None:
    fake_hub.add(REPO, FILE, small_gguf)
    set_offline(True)
    with pytest.raises(OfflineError, match=r"not downloaded; run `fireside pull hf:acme"):
        resolve_model(NAME)
    with pytest.raises(OfflineError):
        pull(NAME)
    with pytest.raises(OfflineError):
        resolve_model("smollm2-135m-instruct")  # the catalog mirror is network too
    assert fake_hub.log == []


def test_hf_hub_offline_is_honoured_and_cached_models_still_load(
    fake_hub: FakeHub, small_gguf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add(REPO, FILE, small_gguf)
    path = resolve_model(NAME, progress=False)
    fake_hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model(NAME) == path
    assert pull(NAME) == path
    assert [m.downloaded for m in list_models() if m.name == NAME] == [True]
    with pytest.raises(OfflineError, match="not downloaded"):
        resolve_model(f"hf:{REPO}/other.gguf")
    assert fake_hub.log == []


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        (f"hf:{REPO}/missing.gguf", ModelNotFoundError, "no such file on the Hub"),
        (
            "hf:acme/no-such-repo/x.gguf",
            ModelNotFoundError,
            "no Hub repository named acme/no-such-repo",
        ),
    ],
)
def test_404_gives_a_clear_error(
    fake_hub: FakeHub, small_gguf: bytes, isolated_hub: Path, name: str, error: type, match: str
) -> None:
    fake_hub.add(REPO, FILE, small_gguf)
    with pytest.raises(error, match=match):
        resolve_model(name, progress=False)
    assert leftovers(isolated_hub) == []


@pytest.mark.parametrize("where", ["/resolve/", "/cdn/"])
def test_500_gives_a_clear_error_and_no_file(
    fake_hub: FakeHub, small_gguf: bytes, isolated_hub: Path, where: str
) -> None:
    fake_hub.add(REPO, FILE, small_gguf)
    fake_hub.faults.status[where] = 500
    with pytest.raises(DownloadError, match="HTTP 500"):
        resolve_model(NAME, progress=False)
    assert not final_path().exists()
    assert leftovers(isolated_hub) == []


def test_a_silent_hub_times_out(
    fake_hub: FakeHub, small_gguf: bytes, isolated_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRESIDE_HUB_TIMEOUT", "0.5")
    fake_hub.add(REPO, FILE, small_gguf)
    fake_hub.faults.stall["/resolve/"] = 30
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:\d+ gave no answer within 0\.5 s"):
        resolve_model(NAME, progress=False)
    assert time.monotonic() - started < 20  # bounded: no long retry loop
    assert leftovers(isolated_hub) == []


def test_an_unreachable_hub_fails_fast(small_gguf: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"cannot reach 127\.0\.0\.1:\d+ \(.*refused"):
        resolve_model(NAME, progress=False)
    assert time.monotonic() - started < 20


def test_free_disk_space_is_checked_before_the_transfer(
    fake_hub: FakeHub, small_gguf: bytes, isolated_hub: Path
) -> None:
    fake_hub.add(REPO, FILE, small_gguf, size_claim=2**62)
    with pytest.raises(InsufficientDiskSpace, match="not enough disk space"):
        resolve_model(NAME, progress=False)
    assert fake_hub.requests("GET") == []
    assert leftovers(isolated_hub) == []


def test_two_processes_pulling_at_once_end_with_one_good_file(
    fake_hub: FakeHub, large_gguf: bytes, isolated_hub: Path
) -> None:
    fake_hub.add(REPO, FILE, large_gguf)
    fake_hub.faults.hold_until_heads = 2  # the transfer starts once both pulls asked for it
    children = [_spawn_pull(NAME) for _ in range(2)]
    outputs = [c.communicate(timeout=120) for c in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        assert Path(out.strip()) == final_path()
    assert sha256(final_path().read_bytes()) == sha256(large_gguf)
    # both went to the network, and the lock made one wait for the other's download
    assert len(fake_hub.requests("HEAD", "/resolve/")) == 2
    assert len(fake_hub.requests("GET", "/cdn/")) == 1
    assert [p.name for p in store_files(isolated_hub) if ".incomplete" in p.name] == []


def test_progress_callback_sees_every_byte_and_can_cancel(
    fake_hub: FakeHub, large_gguf: bytes
) -> None:
    fake_hub.add(REPO, FILE, large_gguf)
    seen: list[tuple[int, int | None]] = []

    def stop_after_first_chunk(done: int, total: int | None) -> bool:
        seen.append((done, total))
        return done == 0

    with pytest.raises(Cancelled):
        resolve_model(NAME, progress=stop_after_first_chunk)
    assert not final_path().exists()
    assert seen[0] == (0, len(large_gguf)) and seen[-1][0] > 0

    seen.clear()
    path = resolve_model(NAME, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == large_gguf
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and dones[0] > 0  # resumed: it started past zero
    assert seen[-1] == (len(large_gguf), len(large_gguf))


def test_progress_must_be_a_bool_or_callable() -> None:
    with pytest.raises(TypeError, match="progress"):
        resolve_model(NAME, progress="yes")  # type: ignore[arg-type]


def test_a_bad_timeout_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESIDE_HUB_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="FIRESIDE_HUB_TIMEOUT must be a number of seconds"):
        resolve_model(NAME, progress=False)


def test_repo_quant_picks_the_file_of_that_quantization(
    fake_hub: FakeHub, small_gguf: bytes
) -> None:
    for name in ("m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "m-Q8_0.gguf", "mmproj-m-Q8_0.gguf"):
        fake_hub.add("acme/m-GGUF", name, small_gguf)
    assert resolve_model("acme/m-GGUF:q8_0", progress=False).name == "m-Q8_0.gguf"
    assert resolve_model("acme/m-GGUF", progress=False).name == "m-Q4_K_M.gguf"
    # once downloaded, the same names resolve offline
    set_offline(True)
    assert resolve_model("acme/m-GGUF:Q8_0").name == "m-Q8_0.gguf"
    with pytest.raises(OfflineError):
        resolve_model("acme/m-GGUF:Q4_K_S")


def test_repo_quant_downloads_every_part_of_a_split_model(
    fake_hub: FakeHub, small_gguf: bytes
) -> None:
    parts = ["big-Q4_0-00001-of-00002.gguf", "big-Q4_0-00002-of-00002.gguf"]
    for part in parts:
        fake_hub.add("acme/big-GGUF", f"Q4_0/{part}", small_gguf)
    fake_hub.add("acme/big-GGUF", "big-Q8_0.gguf", small_gguf)
    path = resolve_model("acme/big-GGUF:Q4_0", progress=False)
    assert path.name == parts[0]
    assert (path.parent / parts[1]).read_bytes() == small_gguf
    listed = [m for m in list_models(downloaded=True)]
    assert [(m.name, m.path) for m in listed] == [(f"hf:acme/big-GGUF/Q4_0/{parts[0]}", path)]
    assert remove("acme/big-GGUF:Q4_0") == [path, path.parent / parts[1]]


def test_repo_quant_that_does_not_exist_lists_what_does(
    fake_hub: FakeHub, small_gguf: bytes
) -> None:
    fake_hub.add("acme/m-GGUF", "m-Q4_K_M.gguf", small_gguf)
    fake_hub.add("acme/m-GGUF", "m-IQ4_XS.gguf", small_gguf)
    with pytest.raises(ModelNotFoundError, match=r"no Q2_K GGUF file \(it has: IQ4_XS, Q4_K_M\)"):
        resolve_model("acme/m-GGUF:Q2_K", progress=False)


def test_url_download_with_and_without_a_checksum(fake_hub: FakeHub, small_gguf: bytes) -> None:
    fake_hub.plain["files/x.gguf"] = small_gguf
    url = fake_hub.url("/plain/files/x.gguf")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        resolve_model(f"{url}#sha256={'0' * 64}", progress=False)
    path = resolve_model(f"{url}#sha256={sha256(small_gguf)}", progress=False)
    assert path.read_bytes() == small_gguf and path.name == "x.gguf"
    assert remove(url) == [path]
    fake_hub.plain["files/x.gguf"] = b"not a model"
    with pytest.raises(DownloadError, match="did not send a GGUF file"):
        resolve_model(url, progress=False)


def test_models_in_huggingface_hub_cache_are_reused_without_network(
    fake_hub: FakeHub, small_gguf: bytes, tmp_path: Path
) -> None:
    # the layout huggingface_hub documents: blobs, snapshots/<commit>, refs/<revision>
    commit = "c" * 40
    repo_dir = tmp_path / "hf-home" / "hub" / "models--acme--tiny-GGUF"
    blob = repo_dir / "blobs" / sha256(small_gguf)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(small_gguf)
    (repo_dir / "snapshots" / commit).mkdir(parents=True)
    (repo_dir / "snapshots" / commit / FILE).symlink_to(blob)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    path = resolve_model(NAME)
    assert path.read_bytes() == small_gguf
    assert fake_hub.log == []
    with pytest.raises(ModelNotFoundError, match="huggingface_hub's cache"):
        remove(NAME)  # fireside never deletes another tool's files
    assert path.exists()


def test_allow_download_false_never_downloads(fake_hub: FakeHub, small_gguf: bytes) -> None:
    fake_hub.add(REPO, FILE, small_gguf)
    with pytest.raises(ModelNotFoundError, match="not downloaded"):
        resolve_model(NAME, allow_download=False)
    assert fake_hub.log == []


def test_pull_list_and_remove(fake_hub: FakeHub, small_gguf: bytes, isolated_hub: Path) -> None:
    fake_hub.add(REPO, FILE, small_gguf)
    rows = {m.name: m for m in list_models()}
    assert not rows["smollm2-135m-instruct"].downloaded and NAME not in rows
    path = pull(NAME, progress=False)
    rows = {m.name: m for m in list_models()}
    assert rows[NAME].downloaded and rows[NAME].path == path and rows[NAME].entry is None
    assert rows[NAME].to_dict()["size"] == len(small_gguf)
    assert [m.name for m in list_models(downloaded=True)] == [NAME]
    assert all(m.kind == "embedding" for m in list_models(kind="embedding"))

    # pull of a present model does not touch the network; force downloads again
    before = len(fake_hub.log)
    assert pull(NAME) == path
    assert len(fake_hub.log) == before
    assert pull(NAME, force=True, progress=False) == path
    assert len(fake_hub.requests("GET", "/cdn/")) == 2

    assert remove(NAME) == [path]
    assert not path.exists() and store_files(isolated_hub) == []
    with pytest.raises(ModelNotFoundError, match="is not downloaded"):
        remove(NAME)


def test_remove_refuses_files_outside_the_store(tmp_path: Path, small_gguf: bytes) -> None:
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(small_gguf)
    with pytest.raises(ValueError, match="not in fireside's model store"):
        remove(mine)
    assert mine.exists()


def test_a_replaced_gpt4all_name_says_which_model_it_uses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_offline(True)
    with caplog.at_level(logging.WARNING, logger="fireside.hub"), pytest.raises(OfflineError):
        resolve_model("orca-mini-3b-gguf2-q4_0.gguf")
    assert "using its successor llama-3.2-3b-instruct" in caplog.text
