"""Hostile names, URLs, listings, redirects and servers, over real HTTP on 127.0.0.1.

Each attack is aimed at a sentinel folder beside the cache (``tmp_path/outside``, which
holds a stand-in for a ``site-packages`` folder); every test ends by comparing a snapshot
of it, so "nothing was written, changed or deleted outside the cache" is checked, not
assumed.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from fireside.errors import DownloadError, ModelNotFoundError
from fireside.hub import pull, remove, resolve_model, set_offline, show, store
from fireside.hub.paths import UnsafePathError

from .conftest import store_files
from .fakehub import FakeHub

# a .pth file runs its "import" lines at the next Python start: the payload of issue #12
PTH_PAYLOAD = b"GGUF\nimport os; open(os.environ['PWNED'], 'w').write('pwned')\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    (folder / "site-packages").mkdir(parents=True)
    (folder / "site-packages" / "keep.pth").write_text("# an honest .pth file\n")
    (folder / "evil.pth").write_bytes(b"# the victim of rm\n")
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` with its content (``None`` for a folder)."""
    return {
        p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fireside.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


# From models/urls/<hash>/ four levels up is tmp_path, the parent of "outside".
UP = "../../../../"
TRAVERSALS = {
    "slash": (UP + "outside/site-packages/evil.pth").replace("/", "%2F"),
    "dots-and-slash-encoded": (UP + "outside/site-packages/evil.pth")
    .replace(".", "%2e")
    .replace("/", "%2f"),
    "backslash": (UP + "outside/site-packages/evil.pth").replace("/", "%5c"),
    "double-encoded": (UP + "outside/site-packages/evil.pth").replace("/", "%252F"),
    "absolute": "{abs}",
    "nul": "evil%00.pth",
}


def _hostile_url(hub: FakeHub, outside: Path, form: str) -> str:
    segment = TRAVERSALS[form]
    if segment == "{abs}":
        segment = str(outside / "site-packages" / "evil.pth").replace("/", "%2F")
    url = hub.url(f"/plain/x/{segment}")
    # the server really serves the payload there, so a vulnerable client would write it
    hub.plain[unquote(urlsplit(url).path)[len("/plain/") :]] = PTH_PAYLOAD
    return url


@pytest.mark.parametrize("form", list(TRAVERSALS))
def test_a_url_cannot_write_outside_the_cache(
    fake_hub: FakeHub, outside: Path, isolated_hub: Path, form: str
) -> None:
    url = _hostile_url(fake_hub, outside, form)
    before = snapshot(outside)
    with pytest.raises(UnsafePathError, match="the URL's file name"):
        pull(url, progress=False)
    with pytest.raises(UnsafePathError):
        resolve_model(url, progress=False)
    assert snapshot(outside) == before
    assert fake_hub.log == []  # refused before any request
    assert store_files(isolated_hub) == []


def test_the_pth_attack_through_the_command_line(
    fake_hub: FakeHub, outside: Path, tmp_path: Path
) -> None:
    url = _hostile_url(fake_hub, outside, "slash")
    before = snapshot(outside)
    done = cli("pull", url)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()  # one line, no traceback
    assert "cannot be used as a file name (it contains a path separator)" in line
    assert snapshot(outside) == before

    # and no Python that starts with that folder on its path runs the payload
    flag = tmp_path / "pwned"
    started = subprocess.run(
        [sys.executable, "-c", f"import site; site.addsitedir({str(outside / 'site-packages')!r})"],
        env={**os.environ, "PWNED": str(flag)},
        check=True,
    )
    assert started.returncode == 0 and not flag.exists()


@pytest.mark.parametrize("form", ["slash", "absolute"])
def test_rm_of_a_hostile_url_deletes_nothing_outside(
    fake_hub: FakeHub, outside: Path, form: str
) -> None:
    url = (
        _hostile_url(fake_hub, outside, form)
        .replace("site-packages%2F", "")
        .replace("site-packages%2f", "")
    )
    assert unquote(url).endswith("outside/evil.pth")
    before = snapshot(outside)
    with pytest.raises(UnsafePathError):
        remove(url)
    done = cli("rm", url)
    assert done.returncode == 1 and "cannot be used as a file name" in done.stderr
    assert snapshot(outside) == before


def test_an_offline_load_of_a_hostile_url_reads_nothing_outside(
    fake_hub: FakeHub, outside: Path, small_gguf: bytes
) -> None:
    (outside / "evil.pth").write_bytes(small_gguf)  # a real model where the URL points
    url = _hostile_url(fake_hub, outside, "slash").replace("site-packages%2F", "")
    set_offline(True)
    with pytest.raises(UnsafePathError):
        resolve_model(url)
    with pytest.raises(UnsafePathError):
        show(url)


@pytest.mark.parametrize(
    "listed",
    [
        "../../../outside/m-Q4_K_M.gguf",
        "Q4_K_M/../../../../outside/m-Q4_K_M.gguf",
        "{abs}",
        "..\\..\\..\\outside\\m-Q4_K_M.gguf",
        "m-Q4_K_M.gguf\x00.pth",
    ],
)
def test_a_hub_listing_that_names_unsafe_paths_is_refused(
    fake_hub: FakeHub, outside: Path, small_gguf: bytes, isolated_hub: Path, listed: str
) -> None:
    if listed == "{abs}":
        listed = str(outside / "m-Q4_K_M.gguf")
    fake_hub.add("acme/evil-GGUF", listed, small_gguf)
    fake_hub.add("acme/evil-GGUF", "README.md", b"hello", lfs=False)
    before = snapshot(outside)
    with pytest.raises(DownloadError, match="the repository listing names an unsafe path"):
        pull("acme/evil-GGUF:Q4_K_M", progress=False)
    assert snapshot(outside) == before
    assert fake_hub.requests(contains="/resolve/") == []  # nothing was fetched
    assert [p for p in store_files(isolated_hub) if p.suffix == ".gguf"] == []


def test_a_hub_redirect_or_content_disposition_never_chooses_the_file_name(
    fake_hub: FakeHub, outside: Path, small_gguf: bytes
) -> None:
    fake_hub.add(
        "acme/tiny-GGUF",
        "tiny-Q4_0.gguf",
        small_gguf,
        cdn_suffix="/..%2F..%2F..%2F..%2Foutside%2Fevil.pth",
        disposition='attachment; filename="../../../../outside/evil.pth"',
    )
    before = snapshot(outside)
    path = pull("hf:acme/tiny-GGUF/tiny-Q4_0.gguf", progress=False)
    assert path == store.hub_path("acme/tiny-GGUF", "tiny-Q4_0.gguf")
    assert path.read_bytes() == small_gguf
    (get,) = fake_hub.requests("GET", "/cdn/")
    assert get.path.endswith("outside/evil.pth")  # the hostile address was really followed
    assert snapshot(outside) == before


def test_a_plain_url_that_redirects_to_a_traversal_stores_under_its_own_name(
    fake_hub: FakeHub, outside: Path, small_gguf: bytes
) -> None:
    fake_hub.plain["..%2F..%2F..%2F..%2Foutside%2Fevil.pth"] = small_gguf
    fake_hub.plain_redirects["files/m.gguf"] = (
        "/plain/..%252F..%252F..%252F..%252Foutside%252Fevil.pth"
    )
    before = snapshot(outside)
    path = pull(fake_hub.url("/plain/files/m.gguf"), progress=False)
    assert path.name == "m.gguf" and path.parent.parent.name == "urls"
    assert path.read_bytes() == small_gguf
    assert snapshot(outside) == before


def test_a_store_folder_linked_elsewhere_is_not_written_through(
    fake_hub: FakeHub, outside: Path, small_gguf: bytes, isolated_hub: Path
) -> None:
    fake_hub.add("acme/tiny-GGUF", "tiny-Q4_0.gguf", small_gguf)
    link = store.repo_dir("acme/tiny-GGUF")
    link.parent.mkdir(parents=True)
    link.symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    with pytest.raises(UnsafePathError, match="is outside"):
        pull("hf:acme/tiny-GGUF/tiny-Q4_0.gguf", progress=False)
    assert snapshot(outside) == before
    assert fake_hub.log == []


def test_names_with_traversal_in_hub_forms_are_refused(outside: Path) -> None:
    before = snapshot(outside)
    for name in ("hf:acme/x/../../../outside/evil.gguf", "hf:acme/x/a\\..\\evil.gguf"):
        with pytest.raises(ValueError, match="not a valid file path inside a repository"):
            pull(name, progress=False)
    with pytest.raises(UnsafePathError, match="'--'"):
        pull("acme--x/y:Q4_0", progress=False)
    assert snapshot(outside) == before


# -- a server that never finishes --------------------------------------------------------


def _pull_in_thread(name: str) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            pull(name, progress=False)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.parametrize(
    ("fault", "why"),
    [("trickle", "under 64 KiB arrived in 1 s"), ("silent", "nothing arrived for 1 s")],
)
def test_a_server_that_trickles_or_goes_silent_is_abandoned_then_resumed(
    fake_hub: FakeHub,
    small_gguf: bytes,
    isolated_hub: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    why: str,
) -> None:
    monkeypatch.setenv("FIRESIDE_DOWNLOAD_STALL_TIMEOUT", "1")
    fake_hub.add("acme/tiny-GGUF", "tiny-Q4_0.gguf", small_gguf)
    if fault == "trickle":
        fake_hub.faults.trickle["/cdn/"] = 0.01  # about 100 bytes a second, forever
    else:
        fake_hub.faults.hang_after["/cdn/"] = 1000  # 1000 bytes, then nothing
    name = "hf:acme/tiny-GGUF/tiny-Q4_0.gguf"
    thread, errors = _pull_in_thread(name)
    thread.join(timeout=60)
    assert not thread.is_alive(), "the download was not abandoned"
    (error,) = errors
    assert isinstance(error, DownloadError)
    assert f"the download stalled: {why} (FIRESIDE_DOWNLOAD_STALL_TIMEOUT)" in str(error)
    assert "the next attempt resumes" in str(error)
    (partial,) = [p for p in store_files(isolated_hub) if p.name.endswith(".incomplete")]
    kept = partial.stat().st_size
    assert kept > 0

    fake_hub.faults.trickle.clear()
    fake_hub.faults.hang_after.clear()
    path = pull(name, progress=False)
    assert path.read_bytes() == small_gguf
    assert fake_hub.requests("GET", "/cdn/")[-1].range == f"bytes={kept}-"


def test_a_server_that_sends_more_than_it_announced_is_cut_off(
    fake_hub: FakeHub, small_gguf: bytes, isolated_hub: Path
) -> None:
    fake_hub.add("acme/tiny-GGUF", "tiny-Q4_0.gguf", small_gguf, payload=small_gguf * 3)
    with pytest.raises(DownloadError, match="sent more than the .* bytes it announced"):
        pull("hf:acme/tiny-GGUF/tiny-Q4_0.gguf", progress=False)
    assert [p for p in store_files(isolated_hub) if p.name.endswith((".gguf", ".incomplete"))] == []


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_a_bad_stall_setting_is_named(
    fake_hub: FakeHub, small_gguf: bytes, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FIRESIDE_DOWNLOAD_STALL_TIMEOUT", value)
    fake_hub.add("acme/tiny-GGUF", "tiny-Q4_0.gguf", small_gguf)
    with pytest.raises(ValueError, match="FIRESIDE_DOWNLOAD_STALL_TIMEOUT must be"):
        pull("hf:acme/tiny-GGUF/tiny-Q4_0.gguf", progress=False)
    assert fake_hub.requests("GET") == []


# -- clear messages for odd local names ------------------------------------------------


def test_an_empty_or_huge_name_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match="the model name is empty"):
        resolve_model("")
    with pytest.raises(ValueError, match=r"is 5,000 characters long \(at most 4,096\)"):
        resolve_model("x" * 5000)
    with pytest.raises(ValueError, match="5,000 characters long"):
        resolve_model(Path("x" * 5000))
    # longer than a file name may be, yet a plausible name: not found, no OSError
    with pytest.raises(ModelNotFoundError, match="not a local file or a catalog model"):
        resolve_model("x" * 300)
    # a home folder that does not exist: not found, no RuntimeError
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve_model("~no-such-user-fireside/m.gguf")


def test_model_of_an_empty_or_huge_name_gets_a_clear_error() -> None:
    pytest.importorskip("fireside._core", reason="fireside.Model needs the native module")
    from fireside import Model

    with pytest.raises(ValueError, match="the model name is empty"):
        Model("")
    with pytest.raises(ValueError, match="5,000 characters long"):
        Model("x" * 5000)
    with pytest.raises(ModelNotFoundError, match="no such file"):
        Model("~no-such-user-fireside/m.gguf")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_show_of_a_fifo_or_a_folder_says_what_it_is(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    with pytest.raises(ModelNotFoundError, match=r"is a named pipe \(FIFO\), not a GGUF"):
        show(str(fifo))
    with pytest.raises(ModelNotFoundError, match=r"is a named pipe \(FIFO\)"):
        resolve_model(fifo)
    done = cli("show", str(fifo))  # must not hang opening the pipe
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {fifo}: is a named pipe (FIFO), not a GGUF model file"
    done = cli("show", str(tmp_path))
    assert done.returncode == 1 and "is a directory, not a GGUF model file" in done.stderr
    done = cli("show", "x" * 5000)
    assert done.returncode == 1 and "5,000 characters long" in done.stderr
    assert "Traceback" not in done.stderr
