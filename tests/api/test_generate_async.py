"""Model.agenerate: the async counterpart of generate (results, streams, errors)."""

from __future__ import annotations

import asyncio

import pytest
from fireside.model import Model

PROMPT = "The capital of France is"


def test_agenerate_matches_generate(model: Model) -> None:
    expected = model.generate(PROMPT, max_tokens=10, temperature=0)

    async def main() -> tuple[str, list[str]]:
        result = await model.agenerate(PROMPT, max_tokens=10, temperature=0)
        stream = await model.agenerate(PROMPT, max_tokens=10, temperature=0, stream=True)
        return result.text, [chunk async for chunk in stream]

    text, chunks = asyncio.run(main())
    assert text == expected.text
    assert "".join(chunks) == expected.text


def test_concurrent_async_generations(model: Model) -> None:
    prompts = [f"Number {i}:" for i in range(4)]
    expected = [model.generate(p, max_tokens=5, temperature=0).text for p in prompts]

    async def main() -> list[str]:
        results = await asyncio.gather(
            *(model.agenerate(p, max_tokens=5, temperature=0) for p in prompts)
        )
        return [r.text for r in results]

    assert asyncio.run(main()) == expected


def test_leaving_an_async_stream_early(model: Model) -> None:
    async def main() -> str:
        stream = await model.agenerate(PROMPT, max_tokens=200, temperature=0, stream=True)
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        result = await asyncio.wait_for(model.agenerate("Hi", max_tokens=2), timeout=30)
        return result.finish_reason

    before = model.stats.n_generated_tokens
    assert asyncio.run(main()) in ("length", "eos")
    assert model.stats.n_generated_tokens - before < 50


def test_agenerate_errors_are_raised_at_the_call(model: Model) -> None:
    async def main() -> None:
        await model.agenerate("Hi", top_p=2.0)

    with pytest.raises(ValueError, match="top_p"):
        asyncio.run(main())
