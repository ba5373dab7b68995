"""The other commands: help, version, devices, the model store, and ``serve``."""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from fireside.netaddr import is_loopback

from .conftest import CLI, fireside


def test_help_imports_nothing_heavy(cli_env: dict[str, str]) -> None:
    """``fireside --help`` must answer at once: no native module, model code or server."""
    code = (
        "import sys\n"
        "from fireside.cli.app import app\n"
        "heavy = ['fireside._core', 'fireside.model', 'fireside.server', 'fastapi', 'uvicorn',\n"
        "         'numpy', 'huggingface_hub', 'jinja2', 'openai']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    helped = fireside(cli_env, "--help")
    assert helped.returncode == 0
    for command in ("run", "chat", "serve", "pull", "list", "rm", "show", "version", "devices"):
        assert re.search(rf"^\s+{command}\s", helped.stdout, re.MULTILINE), command


def test_version_and_devices(cli_env: dict[str, str]) -> None:
    from fireside import __version__, _core

    done = fireside(cli_env, "version")
    assert done.returncode == 0
    assert f"fireside {__version__}" in done.stdout
    assert _core.LLAMA_CPP_COMMIT in done.stdout
    done = fireside(cli_env, "devices")
    assert done.returncode == 0
    for device in _core.devices():
        assert device.name in done.stdout


def test_models_store_commands(cli_env: dict[str, str], model_path: Path) -> None:
    listed = fireside(cli_env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    names = {row["name"] for row in rows}
    assert "smollm2-135m-instruct" in names
    assert not any(row["downloaded"] for row in rows)  # an empty, isolated store
    table = fireside({**cli_env, "COLUMNS": "80"}, "list")
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    firsts = {line.split()[0] for line in lines if line[:1].strip()}
    assert names <= firsts  # every name whole on one line at 80 columns (copy-pasteable)

    shown = fireside(cli_env, "show", "smollm2-135m-instruct", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "smollm2-135m-instruct"
    text = fireside(cli_env, "show", "smollm2-135m-instruct")
    assert "Q4_1" in text.stdout and "downloaded" in text.stdout

    local = fireside(cli_env, "show", str(model_path))  # a file: its GGUF facts
    assert local.returncode == 0, local.stderr
    assert "llama" in local.stdout  # the architecture

    pulled = fireside(cli_env, "pull", str(model_path))  # a local file is already there
    assert pulled.returncode == 0, pulled.stderr
    assert Path(pulled.stdout.strip()) == model_path

    removed = fireside(cli_env, "rm", "smollm2-135m-instruct")
    assert removed.returncode == 1
    assert removed.stderr.startswith("error: ") and "not downloaded" in removed.stderr
    offline = fireside(cli_env, "pull", "smollm2-360m-instruct")
    assert offline.returncode == 1
    assert len(offline.stderr.strip().splitlines()) == 1 and "offline" in offline.stderr


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        assert not is_loopback(host), host


def _read_line(stream, timeout: float) -> str:  # type: ignore[no-untyped-def]
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "the server printed nothing"
    return stream.readline()


def test_serve_answers_and_stops_on_ctrl_c(cli_env: dict[str, str], model_path: Path) -> None:
    process = subprocess.Popen(
        [*CLI, "serve", str(model_path), "--port", "0", "--parallel", "2", "--ctx-size", "256",
         "--api-key", "secret", "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = _read_line(process.stderr, 120)
        match = re.search(r"serving (\S+) at (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        model_id, url = match.groups()
        assert model_id == model_path.name.removesuffix(".gguf")
        assert httpx.get(url + "/health", timeout=30).json()["status"] == "ok"
        client = openai.OpenAI(base_url=url + "/v1", api_key="secret", max_retries=0)
        reply = client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
        assert reply.choices[0].message.content
        process.send_signal(2)  # Ctrl-C
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_warns_without_api_key_off_loopback(cli_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [*CLI, "serve", "/no/such/model.gguf", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )
    try:
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    lines = err.strip().splitlines()
    assert lines[0].startswith("warning: listening on 0.0.0.0 without --api-key"), err
    assert lines[-1].startswith("error: ") and "/no/such/model.gguf" in lines[-1]
    assert process.returncode == 1


def test_serve_reports_a_busy_port(cli_env: dict[str, str], model_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = fireside(cli_env, "serve", str(model_path), "--port", str(port), timeout=120)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("command", ["chat", "serve"])
def test_unknown_model_is_one_line(cli_env: dict[str, str], command: str) -> None:
    done = (
        fireside(cli_env, command, "no-such-model-anywhere", "--port", "0")
        if command == "serve"
        else fireside(cli_env, command, "no-such-model-anywhere", input="")
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "no-such-model-anywhere" in line
