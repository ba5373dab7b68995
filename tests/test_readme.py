"""README's Python examples run as written (with the test model's path for its name)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.answers_corpus import minilm_gguf
from tests.rpc.conftest import start_worker

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(
    code: str,
    model_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if any(client in code for client in ("OpenAI(", "ollama.Client(", "anthropic.Anthropic(")):
        pytest.skip("needs a running server: tests/server covers the official clients")
    code = code.replace('"smollm2-135m-instruct"', repr(str(model_path)))
    if "Collection(" in code:  # LocalDocs: collections in a fresh cache, the real embedder
        monkeypatch.setenv("FIRESIDE_CACHE_DIR", str(tmp_path))
        code = code.replace('"all-minilm-l6-v2"', repr(str(minilm_gguf())))
    workers = []
    try:
        # the RPC example's workers: real ones on loopback in place of the example addresses
        for address in sorted(set(re.findall(r'"(10\.0\.0\.\d+:\d+)"', code))):
            workers.append(start_worker())
            code = code.replace(address, workers[-1].endpoint)
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102 (our own README)
    finally:
        for worker in workers:
            worker.stop()
    assert capsys.readouterr().out.strip(), "the example printed nothing"
