"""``fireside run``: one answer streamed to stdout, prompt from the arguments or stdin."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from fireside.model import Model

from .conftest import fireside

PROMPT = "What is the capital of France?"
OPTIONS = ["-t", "0", "-n", "16", "--ctx-size", "512", "--threads", "1"]


@pytest.fixture(scope="module")
def expected(model_path: Path) -> str:
    """The same request through the Python API (greedy, so it must match exactly)."""
    with Model(model_path, n_ctx=512, n_threads=1) as model:
        tokens = model.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=True)
        return model.generate(tokens, max_tokens=16, temperature=0).text


def test_run_streams_the_answer(cli_env: dict[str, str], model_path: Path, expected: str) -> None:
    done = fireside(cli_env, "run", str(model_path), PROMPT, *OPTIONS)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected + ("" if expected.endswith("\n") else "\n")
    assert done.stderr == ""  # quiet: no llama.cpp log, no progress bar off a terminal


def test_run_reads_the_prompt_from_stdin(
    cli_env: dict[str, str], model_path: Path, expected: str
) -> None:
    done = fireside(cli_env, "run", str(model_path), "-", *OPTIONS, input=PROMPT + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == expected.rstrip("\n")


def test_run_with_system_and_raw(cli_env: dict[str, str], model_path: Path) -> None:
    done = fireside(
        cli_env, "run", str(model_path), "Hello", "--system", "Answer in French.", *OPTIONS
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    raw = fireside(cli_env, "run", str(model_path), "The sky is", "--raw", *OPTIONS)
    assert raw.returncode == 0, raw.stderr
    with Model(model_path, n_ctx=512, n_threads=1) as model:
        assert raw.stdout.rstrip("\n") == model.generate(
            "The sky is", max_tokens=16, temperature=0
        ).text.rstrip("\n")


def test_run_json_schema(cli_env: dict[str, str], model_path: Path, tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string", "maxLength": 12}, "r": {"type": "integer"}},
        "required": ["color", "r"],
        "additionalProperties": False,
    }
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    done = fireside(
        cli_env,
        "run",
        str(model_path),
        "Give me a color.",
        "--json-schema",
        str(path),
        "-t",
        "0",
        "--threads",
        "1",
    )
    assert done.returncode == 0, done.stderr
    jsonschema.validate(json.loads(done.stdout), schema)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "no-such-model-anywhere", "Hi"], "no-such-model-anywhere"),
        (["run", "{model}", "Hi", "--json-schema", "/no/such/schema.json"], "/no/such/schema.json"),
        (["run", "{model}", "   "], "the prompt is empty"),
        (["run", "{model}", "Hi", "--raw", "--system", "x"], "--raw"),
        (["run", "/no/such/file.gguf", "Hi"], "/no/such/file.gguf"),
        (["run", "{model}", "Hi", "-t", "-1"], "temperature"),
    ],
)
def test_errors_are_one_line(
    cli_env: dict[str, str], model_path: Path, args: list[str], words: str
) -> None:
    args = [a.replace("{model}", str(model_path)) for a in args]
    done = fireside(cli_env, *args)
    assert done.returncode == 1, done
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert words in lines[0]


def test_verbose_shows_the_traceback(cli_env: dict[str, str]) -> None:
    done = fireside(cli_env, "--verbose", "run", "/no/such/file.gguf", "Hi")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")


def test_usage_errors_exit_2(cli_env: dict[str, str]) -> None:
    done = fireside(cli_env, "run", "a", "b", "c")
    assert done.returncode == 2
    assert "expected [MODEL] PROMPT" in done.stderr
    assert fireside(cli_env, "run", "x", "--no-such-option").returncode == 2
