"""Loading a model does not wait for a chat template worker.

Loading a model checks its chat template in a worker process
(:mod:`fireside.chat.template_pool`). The first load in a process used to start that
process only once llama.cpp had loaded the weights: :meth:`TemplatePool.prewarm` starts
it in the background first, and the compile then uses that same worker (counted: one
process started, whether the compile came before or after it was ready). Loading the
same model again (a server's model unloaded and asked for again) used to send the same
compile to a worker each time: a source that compiled is not sent again (counted).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fireside.chat.template_pool import TemplatePool
from fireside.errors import TemplateError

SOURCE = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"


def test_a_prewarmed_worker_serves_the_next_request() -> None:
    pool = TemplatePool()
    try:
        assert pool.prewarm()
        assert not pool.prewarm()  # one is starting already
        pool.compile(SOURCE, "test")  # waits for the starting worker, or finds it idle
        assert (pool.spawned, pool.prewarmed) == (1, 1)
        assert len(pool.pids) == 1
        assert not pool.prewarm()  # it has a worker
        out = pool.render(SOURCE, {"messages": [{"role": "user", "content": "hi"}]}, "test")
        assert out == "user: hi\n"
        assert pool.spawned == 1
    finally:
        pool.close()


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_a_worker_is_out_of_the_terminals_reach() -> None:
    """Ctrl-C in a terminal signals its whole foreground process group: the worker runs in
    a session of its own, so `fireside chat` handles the interrupt and the worker lives on."""
    import os

    pool = TemplatePool()
    try:
        pool.compile(SOURCE, "test")
        (pid,) = pool.pids
        assert os.getsid(pid) == pid != os.getsid(0)
        assert os.getpgid(pid) != os.getpgid(0)
    finally:
        pool.close()


def test_a_worker_that_cannot_start_leaves_the_error_to_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = TemplatePool()
    try:
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
        assert pool.prewarm()
        with pytest.raises(TemplateError, match="cannot start a chat template worker process"):
            pool.compile(SOURCE, "test")
        assert (pool.spawned, pool.busy) == (0, 0)
        monkeypatch.undo()
        pool.compile(SOURCE, "test")  # nothing is left waiting for the failed start
        assert pool.spawned == 1
    finally:
        pool.close()


def test_a_source_that_compiled_is_not_sent_again() -> None:
    pool = TemplatePool()
    try:
        pool.compile(SOURCE, "test")
        pool.compile(SOURCE, "again")
        assert pool.sent == 1
        for _ in range(2):  # a broken one is checked (and refused) every time
            with pytest.raises(TemplateError, match="syntax error on line 1"):
                pool.compile("{% for m in messages %}", "broken")
        assert pool.sent == 3
        pool.time_limit = 2.0  # under another limit it is checked again
        pool.compile(SOURCE, "test")
        assert pool.sent == 4
        out = pool.render(SOURCE, {"messages": [{"role": "user", "content": "hi"}]}, "test")
        assert out == "user: hi\n"
    finally:
        pool.close()


def test_loading_a_model_starts_its_template_worker_once(model_path: Path) -> None:
    code = (
        "import json, sys, fireside\n"
        "from fireside.chat.template_pool import shared_pool\n"
        "pool = shared_pool()\n"
        "sent = []\n"
        "for _ in range(2):\n"
        "    with fireside.Model(sys.argv[1], n_ctx=64, n_threads=1, embedding=True) as m:\n"
        "        sent.append(pool.sent)\n"
        "text = m.chat_template.render([{'role': 'user', 'content': 'hi'}])\n"
        "print(json.dumps({'spawned': pool.spawned, 'prewarmed': pool.prewarmed,"
        " 'sent': sent, 'ok': 'hi' in text}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(model_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "spawned": 1,
        "prewarmed": 1,
        "sent": [1, 1],  # the second load's compile was known to pass
        "ok": True,
    }
