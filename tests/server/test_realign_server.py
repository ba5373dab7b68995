"""The server realigns a chat's reply while idle (``fireside_realigned_tokens_total``):
the client's next request, which resends the conversation with that reply in it, reuses
the reply from the cache (counted by ``/metrics``) instead of evaluating it again."""

from __future__ import annotations

from .conftest import LiveServer

TURNS = ["Tell me about lighthouses in two or three sentences.", "Who kept them?"]


def test_the_next_request_reuses_the_reply(server: LiveServer) -> None:
    client = server.client()
    engine = server.app.state.service.engine
    assert engine.wait_realigned(120)  # what earlier tests left
    realigned = server.metrics()["fireside_realigned_tokens_total"]
    n_realigned = engine.stats.n_realigned_tokens
    messages = [{"role": "user", "content": TURNS[0]}]
    first = client.chat.completions.create(
        model=server.model_id,
        messages=messages,
        max_tokens=96,
        temperature=0,  # type: ignore[arg-type]
    )
    server.wait_idle()
    assert engine.wait_realigned(120)
    before = server.metrics()
    # counted in /metrics as the engine counts it: at least the reply and its end of turn
    n = before["fireside_realigned_tokens_total"] - realigned
    assert n == engine.stats.n_realigned_tokens - n_realigned
    assert n >= first.usage.completion_tokens + 1  # type: ignore[union-attr]
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": TURNS[1]},
    ]
    client.chat.completions.create(
        model=server.model_id,
        messages=messages,
        max_tokens=8,
        temperature=0,  # type: ignore[arg-type]
    )
    after = server.wait_idle()
    reused = (
        after["fireside_prompt_tokens_cached_total"] - before["fireside_prompt_tokens_cached_total"]
    )
    n_first = first.usage.prompt_tokens  # type: ignore[union-attr]
    n_reply = first.usage.completion_tokens  # type: ignore[union-attr]
    # the first prompt, its reply and the end of turn after it (a chunk ends there): only
    # the new message is evaluated. Without the realigning the reply would not be reused.
    assert reused == n_first + n_reply + 1
