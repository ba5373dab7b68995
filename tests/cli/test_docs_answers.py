"""``fireside run --docs NAME`` and ``fireside chat --docs NAME``: the answer, then its
numbered sources, on real documents (dpkg's specification files)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from fireside.chat.grounding import Grounding
from fireside.cli.sources import format_sources
from fireside.model import Model

from tests.answers_corpus import (
    PROTECTED_QUESTION,
    ROOTLESS_QUESTION,
    build_collections,
    cache_dir,
)

from .conftest import fireside

OPTIONS = ["-t", "0", "-n", "8", "--ctx-size", "2048", "--threads", "1"]


@pytest.fixture(scope="module")
def answers_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("answers-cache")
    build_collections(cache, tmp_path_factory.mktemp("answers-docs"))
    return cache


@pytest.fixture
def env(cli_env: dict[str, str], answers_cache: Path) -> dict[str, str]:
    return {**cli_env, "FIRESIDE_CACHE_DIR": str(answers_cache)}


@pytest.fixture(scope="module")
def grounded(model_path: Path, answers_cache: Path) -> Iterator[dict[str, Any]]:
    """The same question through the Python API: greedy, so the CLI must match exactly."""
    with cache_dir(answers_cache), Model(model_path, n_ctx=2048, n_threads=1) as model:
        chat = model.chat_session(docs="builds")
        reply = chat.send(ROOTLESS_QUESTION, max_tokens=8, temperature=0)
        yield {"text": reply.text, "references": reply.references}


def test_run_prints_the_answer_then_its_numbered_sources(
    env: dict[str, str], model_path: Path, grounded: dict[str, Any]
) -> None:
    done = fireside(env, "run", str(model_path), ROOTLESS_QUESTION, "--docs", "builds", *OPTIONS)
    assert done.returncode == 0, done.stderr
    sources = format_sources(grounded["references"])
    assert sources.startswith("Sources:\n  [1] rootless-builds.txt (lines ")
    text = grounded["text"]
    assert done.stdout == text + ("" if text.endswith("\n") else "\n") + "\n" + sources
    assert done.stderr == ""


def test_run_takes_several_collections_and_k(
    env: dict[str, str], model_path: Path, answers_cache: Path
) -> None:
    args = ["--docs", "builds,packages", "--docs-k", "2"]
    done = fireside(env, "run", str(model_path), PROTECTED_QUESTION, *args, *OPTIONS)
    assert done.returncode == 0, done.stderr
    with cache_dir(answers_cache), Model(model_path, n_ctx=2048, n_threads=1) as model:
        grounding = Grounding(["builds", "packages"], k=2)
        try:
            refs = grounding.retrieve(PROTECTED_QUESTION, model.count_tokens, n_ctx=2048)
        finally:
            grounding.close()
    assert len(refs) == 2
    assert refs[0].file_name == "protected-field.txt"
    assert done.stdout.endswith("\n" + format_sources(refs))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--docs", "nope"], 1, "no collection named 'nope'"),
        (["--docs", "../builds"], 1, "one plain name"),
        (["--docs", "builds,"], 2, "--docs: empty collection name"),
        (["--docs-k", "2"], 2, "--docs-k needs --docs NAME"),
        (["--docs", "builds", "--raw"], 1, "--docs needs the chat template"),
    ],
)
def test_run_refuses_bad_docs_options_in_one_line_before_loading_the_model(
    env: dict[str, str], tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    missing_model = str(tmp_path / "not-loaded.gguf")  # never reached: docs fail first
    done = fireside(env, "run", missing_model, "question", *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "not-loaded" not in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_chat_shows_sources_after_each_answer_and_keeps_the_history_clean(
    env: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "fireside.cli", "chat", str(model_path), "--docs", "builds,packages", *OPTIONS],
        env=env,
        encoding="utf-8",
        timeout=240,
        dimensions=(50, 200),
    )
    try:
        child.expect_exact("(answering from builds, packages)")
        child.expect_exact(">>> ")
        child.sendline(ROOTLESS_QUESTION)
        child.expect_exact("Sources:")
        child.expect_exact("[1] rootless-builds.txt (lines ")
        child.expect_exact(">>> ")
        child.sendline(PROTECTED_QUESTION)
        child.expect_exact("Sources:")
        child.expect_exact("[1] protected-field.txt (lines ")
        child.expect_exact(">>> ")
        saved = tmp_path / "chat.json"
        child.sendline(f"/save {saved}")
        child.expect_exact("(saved")
        child.expect_exact(">>> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        if child.isalive():
            child.terminate(force=True)
    messages = json.loads(saved.read_text())["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        ROOTLESS_QUESTION,
        PROTECTED_QUESTION,
    ]


def test_serve_refuses_an_unknown_collection_before_binding_or_loading(
    env: dict[str, str], tmp_path: Path
) -> None:
    missing_model = str(tmp_path / "not-loaded.gguf")
    done = fireside(env, "serve", missing_model, "--port", "0", "--docs", "builds,nope")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "--docs: no collection named 'nope'" in done.stderr
    assert "not-loaded" not in done.stderr
    assert "Traceback" not in done.stderr
