"""Continuous batching: concurrent requests share decode steps, join running batches,
and get exactly the greedy output they would get alone."""

from __future__ import annotations

import asyncio
import threading
import time

import openai

from .conftest import PARALLEL, LiveServer

PROMPTS = [
    "Write a short poem about the sea.",
    "List three fruits.",
    "What is the capital of Italy?",
    "Tell me something about cats.",
    "Name the planets of the solar system.",
    "Explain gravity in one sentence.",
    "Give me a color and its RGB code.",
    "Say hello in French.",
]
MAX_TOKENS = 24


def stream_text(client: openai.OpenAI, model: str, prompt: str) -> tuple[str, int]:
    """The streamed reply and its completion tokens (greedy)."""
    parts, tokens = [], 0
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return "".join(parts), tokens


def test_eight_concurrent_streams_match_their_sequential_greedy_outputs(
    server: LiveServer,
) -> None:
    assert len(PROMPTS) == PARALLEL

    async def all_at_once() -> list[tuple[str, int]]:
        client = server.async_client()  # one event loop: the test's Python work stays small

        async def one(prompt: str) -> tuple[str, int]:
            parts, tokens = [], 0
            stream = await client.chat.completions.create(
                model=server.model_id,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=MAX_TOKENS,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
            return "".join(parts), tokens

        try:
            return list(await asyncio.gather(*(one(p) for p in PROMPTS)))
        finally:
            await client.close()

    # a first round together leaves each prompt cached in a slot, so the timed rounds
    # below compare the same work (each reuses its whole prompt)
    first = asyncio.run(all_at_once())
    server.wait_idle()
    client = server.client()
    t0 = time.perf_counter()
    alone = [stream_text(client, server.model_id, p) for p in PROMPTS]
    t_alone = time.perf_counter() - t0
    before = server.wait_idle()

    t0 = time.perf_counter()
    together = asyncio.run(all_at_once())
    t_together = time.perf_counter() - t0
    after = server.wait_idle()

    # every request finished, with exactly the text it got alone
    for prompt, single, batched, cold in zip(PROMPTS, alone, together, first):
        assert batched == single == cold, f"{prompt!r}: alone {single[0]!r}, batched {batched[0]!r}"

    n_tokens = sum(n for _, n in alone)
    steps = after["fireside_decode_steps_total"] - before["fireside_decode_steps_total"]
    sequences = after["fireside_decode_sequences_total"] - before["fireside_decode_sequences_total"]
    print(
        f"\n{len(PROMPTS)} streams: {n_tokens} tokens; one at a time {n_tokens / t_alone:.1f} "
        f"tokens/s, all together {n_tokens / t_together:.1f} tokens/s "
        f"({t_alone / t_together:.2f}x); {steps:.0f} decode steps, "
        f"{sequences / steps:.2f} sequences per step on average, "
        f"at most {after['fireside_decode_sequences_max']:.0f}"
    )
    # the proof of batching is in the counters, not the clock
    assert after["fireside_decode_sequences_max"] >= PARALLEL // 2
    assert sequences / steps > 2
    assert steps < n_tokens  # fewer decode calls than tokens: steps were shared


def test_a_new_request_joins_a_running_generation(server: LiveServer) -> None:
    """A short request sent while a long one streams finishes first: it joined the
    running batch instead of waiting for the long one to end."""
    client = server.client()
    first_chunk = threading.Event()
    long_done = threading.Event()

    def long_stream() -> None:
        for _ in client.chat.completions.create(
            model=server.model_id,
            messages=[{"role": "user", "content": "Write a long story about a dragon."}],
            max_tokens=150,
            temperature=0,
            stream=True,
        ):
            first_chunk.set()
        long_done.set()

    before = server.wait_idle()
    runner = threading.Thread(target=long_stream)
    runner.start()
    assert first_chunk.wait(120)
    short = server.client().chat.completions.create(
        model=server.model_id,
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=3,
        temperature=0,
    )
    assert short.choices[0].message.content
    assert not long_done.is_set(), "the short request waited for the long one"
    runner.join(300)
    after = server.wait_idle()
    assert after["fireside_decode_sequences_max"] >= 2
    assert (
        after["fireside_decode_sequences_total"] - before["fireside_decode_sequences_total"]
        > after["fireside_decode_steps_total"] - before["fireside_decode_steps_total"]
    )


def test_concurrent_requests_take_slots_side_by_side(server: LiveServer) -> None:
    """Fewer requests than slots: they run in slots next to each other, each step one graph.

    llama.cpp computes a graph per run of consecutive slots (``fireside_decode_graphs_total``);
    here the slots unused the longest lie apart, where choosing by age alone would decode
    each step of the four streams in four graphs.
    """
    client = server.client()

    def counting(name: str) -> str:  # long enough to be reused, continued without an end
        return f"{name} counts: " + ", ".join(str(i) for i in range(1, 40)) + ","

    def complete(prompt: str, max_tokens: int) -> str:
        done = client.completions.create(
            model=server.model_id, prompt=prompt, max_tokens=max_tokens, temperature=0
        )
        assert done.usage is not None and done.usage.completion_tokens == max_tokens
        return done.choices[0].text

    names = ["Ada", "Boris", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana"]
    assert len(names) == PARALLEL
    server.wait_idle()
    for name in names:  # one per slot, oldest first
        complete(counting(name), 1)
    for name in names[1::2]:  # again, from their own slots: now every other slot is oldest
        before = server.metrics()
        complete(counting(name), 1)
        reused = server.metrics()["fireside_prompt_tokens_cached_total"]
        assert reused > before["fireside_prompt_tokens_cached_total"]
    fresh = ["Ivo", "Jun", "Kira", "Lev"]

    async def together() -> list[str]:
        aclient = server.async_client()
        try:
            done = await asyncio.gather(
                *(
                    aclient.completions.create(
                        model=server.model_id, prompt=counting(n), max_tokens=16, temperature=0
                    )
                    for n in fresh
                )
            )
            return [d.choices[0].text for d in done]
        finally:
            await aclient.close()

    before = server.wait_idle()
    texts = asyncio.run(together())
    after = server.wait_idle()
    assert texts == [complete(counting(n), 16) for n in fresh]
    graphs = after["fireside_decode_graphs_total"] - before["fireside_decode_graphs_total"]
    steps = after["fireside_decode_steps_total"] - before["fireside_decode_steps_total"]
    tokens = 16 * len(fresh)
    print(f"\n{len(fresh)} streams of 16 tokens: {steps:.0f} decode steps, {graphs:.0f} graphs")
    assert after["fireside_decode_sequences_max"] >= 2
    # a generation graph per step at most (the steps also count prompt evaluations)
    assert graphs <= steps < tokens
