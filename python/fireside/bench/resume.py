"""The ``resume`` section: time to the first token of a long conversation resumed from a
saved session (its KV cache restored, :mod:`fireside.chat.session_cache`) against
evaluating the whole conversation again (asked for by name only).

Each round builds a conversation of about ``resume_tokens`` tokens, sends one message on a
fresh model (the whole conversation is evaluated: the re-evaluation time), saves the
session, then, on another fresh model as after a restart, loads it and sends the next
message. The resumed side's time is ``ChatSession.load`` (reading and checking the cache
file, just written, so from the page cache) plus that message's time to first token; the
re-evaluation's is the first message's time to first token on its fresh model (a few
tokens fewer than the resumed turn's prompt, so the comparison does not favour resuming).
Model loading is timed on neither side. Ratio ``resume.ttft_vs_reevaluate`` (target <=
0.2); ``resume.identical`` is 1 when the replies are those of the uninterrupted session,
``resume.resumed_evaluated_tokens`` counts the prompt tokens the resumed side evaluated
(the new message and the tail of the last 64-token chunk: a failed restore shows here as
the whole conversation).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fireside.bench.suite import Suite
    from fireside.model import Model

NEXT = "Which of these did we talk about first?"


ROOM = 192
"""Context left after the conversation: the two messages sent and their 8-token replies."""


def context_size(n_tokens: int) -> int:
    """The ``n_ctx`` both sides use for a conversation of ``n_tokens``."""
    return n_tokens + ROOM


def conversation(model: Model, n_tokens: int) -> list[dict[str, str]]:
    """A system prompt and exchanges about numbered places: as many as fit in
    ``n_tokens`` tokens once rendered with the model's chat template (the prompt a
    request with these messages evaluates, generation prompt included)."""
    messages = [{"role": "system", "content": "You are a patient guide to an old town."}]
    estimate, i = 0, 0
    while estimate < n_tokens:  # markers: about 5 tokens a message (ChatML)
        i += 1
        exchange = [
            {"role": "user", "content": f"Tell me about place number {i}."},
            {
                "role": "assistant",
                "content": f"Place number {i} is a small square with a fountain and {i % 7 + 2} "
                "old trees. People meet there in the evening, and on market days the stalls "
                "sell bread, cheese and flowers.",
            },
        ]
        messages += exchange
        estimate += sum(model.count_tokens(m["content"]) + 5 for m in exchange)
    while len(messages) > 3 and rendered_tokens(model, messages) > n_tokens:
        del messages[-2:]
    return messages


def rendered_tokens(model: Model, messages: list[dict[str, str]]) -> int:
    """Tokens of ``messages`` rendered with the model's chat template."""
    return len(model.apply_chat_template(messages, tokenize=True))


def run_resume(suite: Suite) -> None:
    from fireside.chat.session import ChatSession
    from fireside.model import Model

    cfg = suite.config
    settings: dict[str, Any] = {"n_ctx": context_size(cfg.resume_tokens), "n_threads": cfg.threads}
    full = suite.fig("resume.reevaluate_s", "s", higher_is_better=False)
    resumed = suite.fig("resume.resumed_s", "s", higher_is_better=False)
    length = suite.fig("resume.conversation_tokens", "tokens")
    evaluated = suite.fig("resume.resumed_evaluated_tokens", "tokens", higher_is_better=False)
    same = True

    def measure() -> Callable[[], None]:
        nonlocal same
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "chat.json"
            with Model(cfg.model, **settings) as model:
                session = model.chat_session()
                session.history = conversation(model, cfg.resume_tokens)
                first = session.send(NEXT, max_tokens=8, temperature=0)
                t_full = first.timings.time_to_first_token_ms / 1000.0
                n_tokens = first.usage.prompt_tokens
                session.save(saved)
                expected = session.send("And after that?", max_tokens=8, temperature=0)
            with Model(cfg.model, **settings) as model:
                t0 = time.perf_counter()
                restored = ChatSession.load(saved, model)
                t_load = time.perf_counter() - t0
                reply = restored.send("And after that?", max_tokens=8, temperature=0)
                t_resumed = t_load + reply.timings.time_to_first_token_ms / 1000.0
                n_evaluated = model.stats.last_prompt_tokens_evaluated
                same = same and reply.tokens == expected.tokens

        def commit() -> None:
            full.add(t_full)
            resumed.add(t_resumed)
            length.add(n_tokens)
            evaluated.add(n_evaluated)

        return commit

    for i in suite.rounds():
        suite.gated(i, "resume", measure)
    suite.fig("resume.identical", "bool").add(1.0 if same else 0.0)
    suite.compare("resume.ttft_vs_reevaluate", resumed, full)
