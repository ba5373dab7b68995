"""``--chat-template FILE`` and ``--think/--no-think`` on run and chat, and how a reply's
thinking is shown: dimmed on stderr, apart from the answer on stdout."""

from __future__ import annotations

import io
import re
from pathlib import Path

from fireside.chat.reply import ReplyDelta
from fireside.cli.reply_view import THINKING_HEADER, ReplyView
from rich.console import Console

from .conftest import fireside

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
OPTIONS = ["-t", "0", "-n", "8", "--ctx-size", "512", "--threads", "1"]


def test_run_takes_a_template_file_and_the_thinking_switch(
    cli_env: dict[str, str], model_path: Path
) -> None:
    qwen3 = TEMPLATES / "Qwen-Qwen3-0.6B.jinja"
    done = fireside(
        cli_env, "run", str(model_path), "Hi", "--chat-template", str(qwen3), "--no-think", *OPTIONS
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and "<think>" not in done.stdout


def test_bad_template_and_switch_options_fail_clearly(
    cli_env: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "none.jinja"
    done = fireside(cli_env, "run", str(model_path), "Hi", "--chat-template", str(missing))
    assert done.returncode == 2
    assert f"--chat-template: chat template file '{missing}' does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    # checked before any model is looked for or loaded (a typo fails at once)
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% if x %}", encoding="utf-8")
    for command in ("run", "chat", "serve"):
        for value, expected in (
            (str(missing), "does not exist"),
            (str(tmp_path), "is not a regular file"),
            ("nochatml", "unknown chat template name 'nochatml'"),
            (str(broken), "syntax error on line 1"),
        ):
            args = [command, "no-such-model", *(["Hi"] if command == "run" else [])]
            done = fireside(cli_env, *args, "--chat-template", value, input="")
            assert done.returncode == 2, (command, value, done.stderr)
            assert "--chat-template: " in done.stderr and expected in done.stderr
            assert "no-such-model" not in done.stderr and "Traceback" not in done.stderr
    # SmolLM2's own template has no thinking switch
    for command in ("run", "chat"):
        args = [command, str(model_path), *(["Hi"] if command == "run" else []), "--no-think"]
        done = fireside(cli_env, *args, *OPTIONS, input="")
        assert done.returncode == 2, done.stderr
        assert "--no-think: chat template 'gguf' has no enable_thinking switch" in done.stderr
    done = fireside(cli_env, "run", str(model_path), "Hi", "--raw", "--think")
    assert done.returncode == 1 and "not --raw" in done.stderr


def test_thinking_is_dimmed_and_apart_from_the_answer() -> None:
    out: list[str] = []
    err = io.StringIO()
    console = Console(file=err, force_terminal=True, color_system="standard", width=80)
    view = ReplyView(out.append, console)
    view.show_all(
        [
            ReplyDelta(reasoning="The user "),
            ReplyDelta(reasoning="asks."),
            ReplyDelta(content="Yes, "),
            ReplyDelta(content="it is."),
            ReplyDelta(
                tool_calls=[{"index": 0, "function": {"name": "f", "arguments": '{"a": 1}'}}]
            ),
        ]
    )
    assert "".join(out) == "Yes, it is.\n"  # stdout: the answer only
    shown = err.getvalue()
    assert "\x1b[2m" in shown  # dim
    text = _strip_ansi(shown)
    assert text.startswith(THINKING_HEADER + "\nThe user asks.\n")
    assert '[tool call] f({"a": 1})' in text


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
