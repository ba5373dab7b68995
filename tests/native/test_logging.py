"""llama.cpp's log goes to the ``fireside.llama`` logger, and nothing reaches stderr by itself."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside import _core

LOGGER = "fireside.llama"


@pytest.fixture
def log_level() -> Iterator[None]:
    """Let a test change the native log level; put back the default (WARNING) after."""
    yield
    _core.set_log_level(logging.WARNING)


def llama_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    _core.flush_logs()
    return [r for r in caplog.records if r.name == LOGGER]


def test_info_messages_when_asked(
    caplog: pytest.LogCaptureFixture, model_path: Path, log_level: None
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    _core.set_log_level(logging.INFO)
    with _core.Model(model_path, vocab_only=True):
        pass
    records = llama_records(caplog)
    assert records, "no llama.cpp messages reached the logger"
    messages = [r.getMessage() for r in records]
    assert any("llama_model_loader" in m for m in messages), messages[:10]
    assert all(r.levelno >= logging.INFO for r in records)
    assert all(m and not m.endswith("\n") for m in messages)


def test_default_level_drops_info(caplog: pytest.LogCaptureFixture, model_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with _core.Model(model_path, vocab_only=True):
        pass
    assert [r for r in llama_records(caplog) if r.levelno < logging.WARNING] == []


def test_errors_are_logged(
    caplog: pytest.LogCaptureFixture, model_path: Path, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    truncated = tmp_path / "truncated.gguf"
    with model_path.open("rb") as src:
        truncated.write_bytes(src.read(5 << 20))
    with pytest.raises(Exception, match="cannot load"):
        _core.Model(truncated)
    errors = [r.getMessage() for r in llama_records(caplog) if r.levelno == logging.ERROR]
    assert any("corrupted or incomplete" in m for m in errors), errors


def test_messages_from_decode_are_delivered(
    caplog: pytest.LogCaptureFixture, model: _core.Model, log_level: None
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    _core.set_log_level(logging.DEBUG)
    ctx = _core.Context(model, n_ctx=256, n_threads=1)
    try:
        ctx.decode(model.tokenize("Hello"))
    finally:
        ctx.close()
    assert llama_records(caplog), "creating a context logged nothing at DEBUG"


CHILD = textwrap.dedent(
    """
    import sys
    from fireside import _core
    model = _core.Model(sys.argv[1])
    ctx = _core.Context(model, n_ctx=256, n_threads=1)
    ctx.decode(model.tokenize("The capital of France is"))
    _core.Sampler(model).add_top_k(5).add_greedy().sample(ctx)
    ctx.state_set(ctx.state_get())
    for call in (
        lambda: _core.Sampler(model).add_grammar("root ::= foo"),
        lambda: _core.Model(sys.argv[2]),
        lambda: ctx.decode([5], positions=[50]),
    ):
        try:
            call()
        except Exception:
            pass
    ctx.close()
    model.close()
    _core.flush_logs()
    """
)


def test_nothing_on_stderr_by_default(model_path: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    with model_path.open("rb") as src:
        truncated.write_bytes(src.read(5 << 20))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_path), str(truncated)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    assert result.stdout == ""
