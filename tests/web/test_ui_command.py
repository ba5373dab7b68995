"""``fireside ui``: serves like ``fireside serve`` and opens the page once the server is up."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fireside.cli.ui import open_when_ready, page_url

# Stands in for the user's browser: webbrowser runs $BROWSER with the URL for %s.
FAKE_BROWSER = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"


def fireside(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fireside.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ui_opens_the_chat_page_once_the_server_answers(
    model_path: Path, tmp_path: Path, browser: Any
) -> None:
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.py"
    script.write_text(FAKE_BROWSER)
    env = {**os.environ, "BROWSER": f"{sys.executable} {script} {opened} %s"}
    proc = fireside("ui", str(model_path), "--port", "0", "-c", "256", "-np", "1", env=env)
    try:
        deadline = time.monotonic() + 120
        while not opened.exists():
            assert proc.poll() is None, f"fireside ui exited: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, "the browser was never opened"
            time.sleep(0.1)
        time.sleep(0.1)  # let the fake browser finish writing
        url = opened.read_text()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url

        # The URL is the live chat page of the model being served.
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#server-status[data-state=ok]")
        assert model_path.stem in page.locator("#model-badge").inner_text()
        context.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # Ctrl-C ends it cleanly: 130 is the shell's convention for an interrupt.
    assert proc.returncode in (0, 130), stderr
    assert "Traceback" not in stderr
    assert f"opening {url}" in stderr


def test_ui_reports_a_busy_port_before_loading(model_path: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.py"
    script.write_text(FAKE_BROWSER)
    env = {**os.environ, "BROWSER": f"{sys.executable} {script} {opened} %s"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = fireside("ui", str(model_path), "--port", str(port), env=env)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
    assert not opened.exists()


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080/"),
        ("0.0.0.0", "http://127.0.0.1:8080/"),
        ("localhost", "http://localhost:8080/"),
        ("::", "http://[::1]:8080/"),
        ("::1", "http://[::1]:8080/"),
    ],
)
def test_page_url(host: str, url: str) -> None:
    assert page_url(host, 8080) == url


def test_no_browser_when_the_server_never_comes_up() -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()
    calls: list[str] = []
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    assert open_when_ready(page_url("127.0.0.1", port), stop, opener=calls.append) is False
    assert calls == []
