"""``fireside chat`` driven through a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pexpect
import pytest
from fireside.cli.chat import read_message

PROMPT = ">>> "
TIMEOUT = 240


@pytest.fixture
def chat(cli_env: dict[str, str], model_path: Path) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "fireside.cli",
            "chat",
            str(model_path),
            "-t",
            "0",
            "-n",
            "300",
            "-c",
            "1024",
            "--stats",
            "--threads",
            "1",
        ],
        env=cli_env,
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(50, 200),
    )
    child.expect_exact("Chatting with")
    child.expect_exact(PROMPT)
    yield child
    if child.isalive():
        child.terminate(force=True)


def saved(child: pexpect.spawn, path: Path) -> list[dict[str, str]]:
    child.sendline(f"/save {path}")
    child.expect_exact("(saved")
    child.expect_exact(PROMPT)
    return json.loads(path.read_text())["messages"]


def test_chat_session(chat: pexpect.spawn, tmp_path: Path) -> None:
    chat.sendline("What is 2+2?")
    chat.expect_exact("What is 2+2?\r\n")  # the terminal's echo
    chat.expect(r"\(\d+ tokens, [\d.]+ tokens/s")  # --stats
    reply = chat.before.strip()
    assert reply, "no reply was shown"
    chat.expect_exact(PROMPT)
    history = saved(chat, tmp_path / "one.json")
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["content"].strip() == reply.replace("\r\n", "\n").strip()

    chat.sendline("/help")
    chat.expect_exact("/reset")
    chat.expect_exact(PROMPT)

    # a message over two lines (trailing backslash)
    chat.sendline("Say hello \\")
    chat.expect_exact("... ")
    chat.sendline("in French.")
    chat.expect_exact(PROMPT)
    history = saved(chat, tmp_path / "two.json")
    assert history[-2] == {"role": "user", "content": "Say hello \nin French."}

    chat.sendline("/reset")
    chat.expect_exact("(conversation cleared)")
    chat.expect_exact(PROMPT)
    chat.sendline("/system You are a pirate.")
    chat.expect_exact("(system message set)")
    chat.expect_exact(PROMPT)
    assert saved(chat, tmp_path / "three.json") == [
        {"role": "system", "content": "You are a pirate."}
    ]
    chat.sendline(f"/load {tmp_path / 'one.json'}")
    chat.expect_exact("(loaded 2 messages")
    chat.expect_exact(PROMPT)
    chat.sendline("/nonsense")
    chat.expect_exact("unknown command /nonsense")
    chat.expect_exact(PROMPT)
    chat.sendline(f"/load {tmp_path / 'missing.json'}")
    chat.expect_exact("error:")
    chat.expect_exact(PROMPT)

    chat.sendeof()  # Ctrl-D leaves
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


def test_ctrl_c_stops_the_reply_not_the_program(chat: pexpect.spawn, tmp_path: Path) -> None:
    chat.sendline("Write a very long story about a dragon and a knight.")
    chat.expect_exact("knight.\r\n")
    chat.expect(r"\w+ \w+ \w+")  # the reply is streaming
    chat.sendintr()
    chat.expect_exact("(stopped)")
    chat.expect_exact(PROMPT)
    history = saved(chat, tmp_path / "story.json")
    assert history[-1]["role"] == "assistant"
    shown = history[-1]["content"]
    assert shown  # the part written so far is kept
    # Ctrl-C at the prompt does not leave either (even when started with SIGINT ignored,
    # as `cmd &` in a script does: this suite may run that way)
    chat.sendintr()
    chat.expect_exact("(Ctrl-D or /exit to leave)")
    chat.expect_exact(PROMPT)
    chat.sendline("/exit")
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


def test_read_message_joins_lines() -> None:
    def lines(*items: str):  # type: ignore[no-untyped-def]
        it = iter(items)

        def read(prompt: str) -> str:
            for item in it:
                return item
            raise EOFError

        return read

    assert read_message(lines("hello")) == "hello"
    assert read_message(lines("a \\", "b \\", "c")) == "a \nb \nc"
    assert read_message(lines('"""', "x", "", "y", '"""')) == "x\n\ny"
    with pytest.raises(EOFError):
        read_message(lines())
    with pytest.raises(EOFError):  # Ctrl-D inside a block
        read_message(lines('"""', "x"))
