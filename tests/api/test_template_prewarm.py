"""A model's chat template worker starts while the model loads, not after it.

Loading a model compiles its chat template in a worker process
(:mod:`fireside.chat.template_pool`); the first load in a process used to start that
process only once llama.cpp had loaded the weights. :meth:`TemplatePool.prewarm` starts
it in the background first, and the compile then uses that same worker (counted: one
process started, whether the compile came before or after it was ready).
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


def test_loading_a_model_starts_its_template_worker_once(model_path: Path) -> None:
    code = (
        "import json, sys, fireside\n"
        "from fireside.chat.template_pool import shared_pool\n"
        "pool = shared_pool()\n"
        "with fireside.Model(sys.argv[1], n_ctx=64, n_threads=1, embedding=True) as m:\n"
        "    text = m.apply_chat_template([{'role': 'user', 'content': 'hi'}])\n"
        "print(json.dumps({'spawned': pool.spawned, 'prewarmed': pool.prewarmed,"
        " 'ok': 'hi' in text}))\n"
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
        "ok": True,
    }
