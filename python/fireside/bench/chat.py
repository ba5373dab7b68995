"""Time to first token over the turns of one chat session.

A session re-renders the whole conversation each turn but evaluates only what its KV
cache does not hold yet, so the time to the first token should stay flat as the history
grows. Each turn sends a user message of similar length and streams a greedy reply of
``reply_tokens`` tokens; the time from ``send`` to the first text chunk is recorded.
Between turns the benchmark gives the model the pause a reader takes: it sends the next
message once the model is idle (:meth:`fireside.Model.wait_idle`: the previous reply has
been evaluated again as whole prompt chunks, which the next turn reuses); ``idle_ms``
collects how long that took after each reply.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fireside.model import Model

QUESTIONS = [
    "Tell me something interesting about lighthouses and the people who kept them.",
    "How did sailors find their way at night before lighthouses were common?",
    "What kinds of lamps and lenses were used in the nineteenth century?",
    "Why are some lighthouses painted with stripes or other bold patterns?",
    "Describe a typical day in the life of a lighthouse keeper on a remote island.",
    "How were lighthouses supplied with fuel and food during long winter storms?",
    "Which famous lighthouse is the oldest one still working today, and where is it?",
    "How did radio and satellite navigation change the role of the lighthouse?",
    "What happens to old lighthouses once they are no longer needed for ships?",
    "If you could visit one lighthouse anywhere in the world, which would it be and why?",
    "Summarise our whole conversation about lighthouses in a few short sentences.",
    "Thank you. What should I read next if I want to learn more about the sea?",
]


def chat_ttft(
    model: Model, *, turns: int, reply_tokens: int, idle_ms: list[float] | None = None
) -> list[float]:
    """Seconds to the first reply chunk for turns 1..``turns`` of a fresh session."""
    model.reset()
    session = model.chat_session()
    out = []
    for i in range(turns):
        question = QUESTIONS[i % len(QUESTIONS)]
        t0 = time.perf_counter()
        stream = session.send(question, stream=True, max_tokens=reply_tokens, temperature=0.0)
        first: float | None = None
        for _ in stream:
            if first is None:
                first = time.perf_counter() - t0
        result = stream.result
        if first is None:  # an empty reply: the first token was end-of-turn
            first = (result.timings.time_to_first_token_ms / 1000.0) if result else 0.0
        out.append(first)
        t_idle = time.perf_counter()
        if not model.wait_idle(120):
            raise RuntimeError("the model did not become idle after a chat turn")
        if idle_ms is not None:
            idle_ms.append((time.perf_counter() - t_idle) * 1000.0)
    return out
