"""Every graph is computed on one native thread, whichever Python thread calls ``decode``:
OpenMP then keeps one team of workers for the process (see ``csrc/compute_thread.h``),
which the process's thread count shows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
from fireside import _core

ContextFactory = Callable[..., _core.Context]


def os_threads() -> int:
    return psutil.Process().num_threads()


def test_decodes_from_many_threads_share_one_openmp_team(
    new_context: ContextFactory, model: _core.Model
) -> None:
    ctx = new_context(n_threads=2, n_threads_batch=2)
    prompt = model.tokenize("The capital of France is")
    ctx.decode(prompt[:2])  # the compute thread and its OpenMP team exist from here on
    baseline = os_threads()

    n_callers = 3
    release = threading.Event()
    decoded = threading.Barrier(n_callers + 1)
    errors: list[BaseException] = []

    def caller(i: int) -> None:
        try:
            ctx.decode(prompt[2 + i : 3 + i])
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        decoded.wait(30)
        release.wait(30)  # stay alive: a thread's OpenMP team lives as long as it does

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(n_callers)]
    for t in callers:
        t.start()
    decoded.wait(30)
    try:
        assert not errors, errors
        # each caller is one thread; none of them brought OpenMP workers of its own
        assert os_threads() == baseline + n_callers
    finally:
        release.set()
        for t in callers:
            t.join(30)
    assert ctx.seq_pos_max(0) == 2 + n_callers - 1


def test_a_forked_child_decodes(model_path: Path) -> None:
    """The compute thread does not survive ``fork()``: the child starts its own."""
    script = textwrap.dedent(
        f"""
        import os
        from fireside import _core
        model = _core.Model({str(model_path)!r})
        ctx = _core.Context(model, n_ctx=128, n_threads=1)
        ctx.decode(model.tokenize("Hello"))
        pid = os.fork()
        if pid == 0:
            ctx.decode(model.tokenize(" world"))
            os._exit(0 if ctx.seq_pos_max(0) > 0 else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("child 0"), done.stdout + done.stderr[-2000:]
