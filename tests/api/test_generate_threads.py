"""One Model shared by threads: generations are serialised and never interfere."""

from __future__ import annotations

import threading

from fireside.model import Model

PROMPTS = [f"Fact number {i} about the ocean:" for i in range(8)]


def test_eight_threads_match_their_single_thread_results(model: Model) -> None:
    expected = {p: model.generate(p, max_tokens=5, temperature=0).text for p in PROMPTS}
    results: dict[str, str] = {}
    barrier = threading.Barrier(len(PROMPTS))

    def worker(prompt: str) -> None:  # an exception leaves its result missing
        barrier.wait()
        if PROMPTS.index(prompt) % 2:  # half of them stream
            results[prompt] = "".join(
                model.generate(prompt, max_tokens=5, temperature=0, stream=True)
            )
        else:
            results[prompt] = model.generate(prompt, max_tokens=5, temperature=0).text

    threads = [threading.Thread(target=worker, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert results == expected


def test_concurrent_chat_sessions(model: Model) -> None:
    sessions = [model.chat_session(f"You are assistant number {i}.") for i in range(3)]
    expected = []
    for s in sessions:
        twin = s.fork()
        expected.append(twin.send("Hi!", max_tokens=6, temperature=0).text)

    replies: dict[int, str] = {}

    def worker(i: int) -> None:
        replies[i] = sessions[i].send("Hi!", max_tokens=6, temperature=0).text

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [replies[i] for i in range(3)] == expected
