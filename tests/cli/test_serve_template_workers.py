"""A ``fireside serve`` stopped by SIGTERM while a chat template is still rendering leaves no
template worker behind (uvicorn re-raises the signal, so exit handlers never run: the
server's shutdown stops the workers)."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil

from .conftest import CLI

# On the cue "freeze", compare two structures of 2**40 shared parts: one C call, for hours.
FREEZE_ON_CUE = (
    "{% if messages[-1].content == 'freeze' %}"
    "{% set ns = namespace(a=[0], b=[0]) %}{% for i in range(40) %}"
    "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}"
    "{{ ns.a == ns.b }}{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n"
)


def test_sigterm_stops_a_busy_template_worker(cli_env: dict[str, str], model_path: Path) -> None:
    process = subprocess.Popen(
        [*CLI, "serve", str(model_path), "--port", "0", "--parallel", "1", "--ctx-size", "256",
         "--threads", "1", "--chat-template", FREEZE_ON_CUE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], 120)
        assert ready, "the server printed nothing"
        line = process.stderr.readline()
        match = re.search(r"serving \S+ at (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        model_id = httpx.get(match[1] + "/v1/models", timeout=30).json()["data"][0]["id"]
        body = {"model": model_id, "messages": [{"role": "user", "content": "freeze"}]}
        threading.Thread(
            target=lambda: httpx.post(match[1] + "/v1/chat/completions", json=body, timeout=60),
            daemon=True,
        ).start()

        server = psutil.Process(process.pid)
        deadline = time.monotonic() + 60
        busy: list[psutil.Process] = []
        while not busy:  # a worker spends CPU on the hostile render
            assert time.monotonic() < deadline, "no template worker started rendering"
            busy = [w for w in server.children() if w.cpu_times().user > 0.5]
            time.sleep(0.05)

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) is not None
        _, alive = psutil.wait_procs(busy, timeout=3)
        assert not alive, f"template workers outlived the server: {[p.pid for p in alive]}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
