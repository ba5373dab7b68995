"""The ``resume`` and ``serve-resume`` sections' conversation: as long as asked once
rendered with the real model's chat template (the prompt the benchmark evaluates), and a
context that holds it and the two turns that follow."""

from __future__ import annotations

from pathlib import Path

import fireside
from fireside.bench.resume import ROOM, context_size, conversation, rendered_tokens


def test_the_conversation_fills_what_was_asked_as_rendered(model_path: Path) -> None:
    with fireside.Model(model_path, n_ctx=1024, n_threads=1) as model:
        messages = conversation(model, 500)
        n = rendered_tokens(model, messages)
        rendered = model.apply_chat_template(messages)
    assert 500 - 100 < n <= 500  # within one exchange (about 50 tokens) of the size asked
    assert isinstance(rendered, str) and "place number 1." in rendered
    assert [m["role"] for m in messages[:3]] == ["system", "user", "assistant"]
    assert messages[-1]["role"] == "assistant"  # whole exchanges only
    assert context_size(8000) == 8000 + ROOM == 8192  # SmolLM2's trained context
