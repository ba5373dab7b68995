"""The path checks every hub path builder goes through (:mod:`fireside.hub.paths`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fireside.hub import paths, store
from fireside.hub.paths import UnsafePathError


@pytest.mark.parametrize(
    "name",
    [
        "model.gguf",
        "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        ".gitattributes",
        "mod el+1.gguf",
        "é.gguf",
    ],
)
def test_ordinary_names_are_accepted(name: str) -> None:
    assert paths.component(name, what="test") == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        (".", "relative folder"),
        ("..", "relative folder"),
        ("a/b", "separator"),
        ("a\\b", "separator"),
        ("x\x00.gguf", "NUL"),
        ("C:evil.gguf", "':'"),
        ("x.gguf:stream", "':'"),
        ("x\n.gguf", "control character"),
        ("x.gguf.", "ends with a dot"),
        ("x.gguf ", "ends with a dot or a space"),
        ("CON", "device"),
        ("nul.gguf", "device"),
        ("\udc80.gguf", "surrogate"),
        ("x" * 201, "201 bytes long"),
        ("é" * 101, "202 bytes long"),
    ],
)
def test_unsafe_names_are_refused_saying_why(name: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why):
        paths.component(name, what="test")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../x.gguf", "relative folder"),
        ("a/../../x.gguf", "relative folder"),
        ("/etc/x.gguf", "absolute"),
        ("\\\\host\\share\\x.gguf", "absolute"),
        ("a//x.gguf", "empty"),
        ("a/x\x00.gguf", "NUL"),
        ("/".join(["a"] * 17), "17 parts"),
        ("a" * 1025, "1025 characters"),
    ],
)
def test_unsafe_repository_paths_are_refused(path: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why):
        paths.relative_parts(path, what="acme/x")


def test_a_repository_path_splits_into_checked_parts() -> None:
    assert paths.relative_parts("Q4_0/m-00001-of-00002.gguf", what="t") == [
        "Q4_0",
        "m-00001-of-00002.gguf",
    ]


@pytest.mark.parametrize(
    ("segment", "name"),
    [("x.gguf", "x.gguf"), ("my%20model.gguf", "my model.gguf"), ("100%.gguf", "100%.gguf")],
)
def test_url_file_names_are_decoded_once(segment: str, name: str) -> None:
    assert paths.url_file_name(segment, what="t") == name


@pytest.mark.parametrize(
    ("segment", "why"),
    [
        ("..%2F..%2Fevil.pth", "separator"),
        ("%2e%2e%2f%2e%2e%2fevil.pth", "separator"),
        ("..%5C..%5Cevil.pth", "separator"),
        ("%2E%2E", "relative folder"),
        ("..%252F..%252Fevil.pth", "encoded more than once"),
        ("..%25252F..%25252Fevil.pth", "encoded more than once"),
        ("%2Fetc%2Fevil.pth", "separator"),
        ("evil%00.gguf", "NUL"),
        ("C%3Aevil.gguf", "':'"),
        ("%ff%fe.gguf", "not valid UTF-8"),
        ("%25" * 3 + "2525252F", "encoded too many times"),
    ],
)
def test_hostile_url_file_names_are_refused(segment: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why):
        paths.url_file_name(segment, what="http://h/x")


def test_inside_follows_symlinked_folders(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert paths.inside(root, root / "ok" / "m.gguf", what="t") == root / "ok" / "m.gguf"
    assert paths.inside(root, root / "m.gguf", what="t") == root / "m.gguf"
    with pytest.raises(UnsafePathError, match="is outside"):
        paths.inside(root, root / "link" / "m.gguf", what="t")
    with pytest.raises(UnsafePathError, match="is outside"):
        paths.inside(root, root / "ok" / ".." / ".." / "m.gguf", what="t")
    with pytest.raises(UnsafePathError, match="does not name a file"):
        paths.inside(root, root / "ok" / "..", what="t")
    with pytest.raises(UnsafePathError, match="is outside"):
        paths.inside(root, root, what="t")


@pytest.mark.parametrize(
    ("repo", "filename", "why"),
    [
        ("acme/x", "../../../evil.gguf", "relative folder"),
        ("acme/x", "evil.pth", "only .gguf"),
        ("../x", "m.gguf", "relative folder"),
        ("acme/..", "m.gguf", "relative folder"),
        ("acme", "m.gguf", "owner/name"),
        ("acme/a--b", "m.gguf", "'--'"),
        ("acme/x/y", "m.gguf", "separator"),
    ],
)
def test_store_paths_are_built_only_from_safe_parts(repo: str, filename: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why):
        store.hub_path(repo, filename)


def test_url_files_always_get_a_gguf_name(isolated_hub: Path) -> None:
    path = store.url_path("http://h/download", "download")
    assert path.name == "download.gguf" and path.parent.parent.name == "urls"
    assert store.url_path("http://h/m.GGUF", "m.GGUF").name == "m.GGUF"
    with pytest.raises(UnsafePathError):
        store.url_path("http://h/x", "../../evil.pth")


def test_delete_refuses_a_path_outside_the_store(tmp_path: Path, isolated_hub: Path) -> None:
    victim = tmp_path / "victim.gguf"
    victim.write_bytes(b"GGUF")
    escape = store.repo_dir("acme/x") / ".." / ".." / ".." / "victim.gguf"
    assert escape.resolve() == victim.resolve()
    with pytest.raises(UnsafePathError, match="is outside"):
        store.delete(escape)
    assert victim.read_bytes() == b"GGUF"
