"""The gpt4all-compatible facade: GPT4All and Embed4All with GPT4All's API."""

from __future__ import annotations

import os
import re
import runpy
from collections.abc import Iterator
from pathlib import Path

import fireside.generation.threads
import fireside.model
import pytest
from fireside.compat import gpt4all as facade
from fireside.compat.gpt4all import Embed4All, GPT4All
from fireside.embeddings import Embedder
from fireside.errors import ModelLoadError, ModelNotFoundError

PROGRAM = """
import pprint
import fireside as gpt4all
model = gpt4all.GPT4All("smollm2-135m-instruct")
with model.chat_session():
    for q in ["Can you explain what is a large language model?", "Can you give some examples applications?", "Are there any limitations?", "Summarize the above in two sentences."]:
        print("Q:", q); print("A:", model.generate(q))
    pprint.pprint(model.current_chat_session)
"""  # the issue's program, verbatim


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[GPT4All]:
    with GPT4All(model_path.name, model_path=model_path.parent, n_threads=1) as m:
        yield m


def test_the_issue_program_runs(
    model_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the default model, found where GPT4All keeps its files (no download in tests)
    folder = tmp_path / "gpt4all"
    folder.mkdir()
    os.symlink(model_path, folder / "smollm2-135m-instruct.gguf")
    monkeypatch.setattr(facade, "DEFAULT_MODEL_DIRECTORY", folder)
    # one thread: on a busy 2-core CI machine a second, descheduled thread slows every token
    monkeypatch.setattr(fireside.generation.threads, "default_n_threads", lambda: 1)
    script = tmp_path / "issue_program.py"
    script.write_text(PROGRAM, encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    print(out)
    answers = re.findall(r"^A: (.*)$", out, re.MULTILINE)
    assert len(answers) == 4
    assert all(a.strip() for a in answers)
    assert "'role': 'system'" in out
    assert out.count("'role': 'user'") == 4
    assert out.count("'role': 'assistant'") == 4
    assert "Summarize the above in two sentences." in out


def test_generate_outside_a_session(model: GPT4All) -> None:
    text = model.generate("The capital of France is", max_tokens=8, temp=0)
    assert isinstance(text, str) and text.strip()
    assert model.current_chat_session == []
    pieces = list(model.generate("The capital of France is", max_tokens=8, temp=0, streaming=True))
    assert all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == text
    assert model.generate("The capital of France is", n_predict=2, temp=0) != text


def test_callback_receives_tokens_and_can_stop(model: GPT4All) -> None:
    seen: list[tuple[int, str]] = []

    def callback(token_id: int, piece: str) -> bool:
        seen.append((token_id, piece))
        return len(seen) < 3

    text = model.generate("Once upon a time", max_tokens=50, temp=0, callback=callback)
    assert len(seen) == 3
    assert all(isinstance(t, int) for t, _ in seen)
    assert text == "".join(p for _, p in seen)


def test_chat_session_history(model: GPT4All) -> None:
    with model.chat_session("You are a terse assistant.") as same:
        assert same is model
        assert model.current_chat_session == [
            {"role": "system", "content": "You are a terse assistant."}
        ]
        reply = model.generate("What is the capital of France?", max_tokens=20, temp=0)
        streamed = "".join(model.generate("And of Spain?", max_tokens=20, temp=0, streaming=True))
        assert model.current_chat_session == [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "And of Spain?"},
            {"role": "assistant", "content": streamed},
        ]
    assert model.current_chat_session == []
    with model.chat_session():
        assert model.current_chat_session == [{"role": "system", "content": ""}]


def test_setting_the_chat_session(model: GPT4All) -> None:
    with pytest.raises(ValueError, match="only be set when there is an active chat session"):
        model.current_chat_session = []
    with model.chat_session():
        model.current_chat_session = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
        ]
        model.generate("What is my name?", max_tokens=10, temp=0)
        history = model.current_chat_session
        assert history[0] == {"role": "system", "content": "Be brief."}
        assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]


def test_legacy_prompt_template(model: GPT4All) -> None:
    with model.chat_session("Be helpful.", "### Human:\n{0}\n### Assistant:\n"):
        reply = model.generate("Say hi", max_tokens=8, temp=0)
        assert isinstance(reply, str)
        assert model.current_chat_session[-1] == {"role": "assistant", "content": reply}
    rendered = facade._legacy_template("<user>{0}</user>").render(
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": 'hi "there" 🍕'},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "bye"},
        ]
    )
    assert rendered == 'S\n<user>hi "there" 🍕</user>yo\n<user>bye</user>'
    with (
        pytest.raises(ValueError, match="literal '%1' is not supported"),
        model.chat_session(prompt_template="### Human: %1"),
    ):
        pass
    with (
        pytest.raises(ValueError, match=r"must contain '\{0\}'"),
        model.chat_session(prompt_template="no placeholder"),
    ):
        pass


def test_ggml_names_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="GGUF is required") as info:
        GPT4All("orca-mini-7b.ggmlv3.q4_0.bin", model_path=tmp_path)
    assert "closest catalog model" in str(info.value)


@pytest.mark.parametrize(
    ("name", "head", "says"),
    [
        ("old-model.bin", b"lmgg", "GGML files are no longer supported; GGUF is required"),
        ("page.gguf", b"<htm", "not a GGUF model file"),
    ],
)
def test_a_file_that_is_not_gguf_is_refused_as_model_refuses_it(
    tmp_path: Path, name: str, head: bytes, says: str
) -> None:
    """One GGUF check (the hub's ``check_local``) for the facade, ``Model`` and ``Embedder``:
    the same error type and the same message, naming the file."""
    path = tmp_path / name
    path.write_bytes(head + bytes(100))
    messages = []
    for load in (
        lambda: GPT4All(name, model_path=tmp_path),
        lambda: fireside.model.Model(path),
        lambda: Embedder(path),
    ):
        with pytest.raises(ModelLoadError) as info:
            load()
        messages.append(str(info.value))
    assert messages == [messages[0]] * 3
    assert str(path) in messages[0] and says in messages[0]


def test_catalog_and_devices() -> None:
    models = GPT4All.list_models()
    assert models
    assert all("filename" in m and m["filename"].endswith(".gguf") for m in models)
    assert any(m["name"] == "smollm2-135m-instruct" for m in models)
    gpus = GPT4All.list_gpus()
    assert isinstance(gpus, list)


def test_bad_arguments(model: GPT4All) -> None:
    with pytest.raises(TypeError, match="prompt must be a str"):
        model.generate(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_p"):
        model.generate("Hi", top_p=7)
    with pytest.raises(ValueError, match="n_batch"):
        model.generate("Hi", n_batch=0)


def test_embed4all(model_path: Path) -> None:
    with Embed4All(model_path.name, model_path=model_path.parent, n_threads=1) as e:
        one = e.embed("The cat sat on the mat.")
        assert isinstance(one, list) and all(isinstance(x, float) for x in one)
        many = e.embed(["first text", "second text"])
        assert len(many) == 2 and len(many[0]) == len(one)
        short = e.embed("hello", dimensionality=64)
        assert len(short) == 64
        assert sum(x * x for x in short) == pytest.approx(1.0, abs=1e-4)
        out = e.embed(["a b c", "d e"], return_dict=True)
        assert set(out) == {"embeddings", "n_prompt_tokens"}
        assert out["n_prompt_tokens"] >= 5
        with pytest.raises(ValueError, match="long_text_mode"):
            e.embed("x", long_text_mode="average")
        with pytest.raises(ValueError, match="dimensionality"):
            e.embed("x", dimensionality=8)
    with pytest.raises(TypeError, match="unexpected options"):
        Embed4All(model_path.name, model_path=model_path.parent, colour="red")
