"""The prompt cache's directory on its own (no model): two caches writing into one
directory at once leave only whole, valid files within the bound and no temporary files;
what cannot be stored or used is refused with a clear reason."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest
from fireside.generation.prompt_cache import MAGIC, SUFFIX, PromptCache
from fireside.server.config import ServerConfig

SETTINGS = {"model_name": "m.gguf", "n_ctx": 512, "chunk": 64}
PAYLOAD = 64 << 10


def test_two_caches_share_a_directory(tmp_path: Path) -> None:
    budget = 10 * (PAYLOAD + 1024)
    caches = [PromptCache(tmp_path, budget) for _ in range(2)]
    bound = [cache.bind(SETTINGS) for cache in caches]
    start = threading.Barrier(4)
    prompts = [[1000 * p + i for i in range(128)] for p in range(12)]

    def writer(index: int) -> None:
        start.wait()
        for prompt in prompts:  # both caches write every prefix: the same keys race
            keys = bound[index % 2].keys(prompt, [64, 128])
            bound[index % 2].save(list(keys.values()), 128, bytes([prompt[0] % 251]) * PAYLOAD)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for cache in caches:
        assert cache.flush(60)
    names = os.listdir(tmp_path)
    assert all(name.endswith(SUFFIX) for name in names), names  # no temporary files left
    assert sum((tmp_path / name).stat().st_size for name in names) <= budget
    assert 1 <= len(names) <= 10
    n_found = 0
    for prompt in prompts:  # whatever is left is whole and valid
        found = bound[0].find(prompt, [64, 128])
        if found is not None:
            assert found.n_tokens == found.n_file == 128
            assert found.payload == bytes([prompt[0] % 251]) * PAYLOAD
            n_found += 1
        half = bound[1].find([*prompt[:64], -1, -2], [64])  # the start of a stored prefix
        assert (half is not None) == (found is not None)
        assert half is None or (half.n_tokens, half.n_file) == (64, 128)
    assert n_found == len(names)
    assert caches[0].stats().rejected == 0
    for cache in caches:
        cache.close()


def test_a_prefix_larger_than_the_bound_is_not_stored(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, 1000)
    bound = cache.bind(SETTINGS)
    assert not bound.save(list(bound.keys([1] * 64, [64]).values()), 64, bytes(2000))
    cache.close()
    assert os.listdir(tmp_path) == []


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="a-file.*cannot be used"):
        PromptCache(afile / "cache")
    with pytest.raises(ValueError, match="max_bytes must be an integer >= 1"):
        PromptCache(tmp_path, 0)
    with pytest.raises(ValueError, match="prompt_cache_size must be an integer >= 1"):
        ServerConfig(prompt_cache=str(tmp_path), prompt_cache_size=0)
    with pytest.raises(TypeError, match="prompt_cache must be a directory path"):
        ServerConfig(prompt_cache=3)  # type: ignore[arg-type]
    assert ServerConfig(prompt_cache=tmp_path).prompt_cache == str(tmp_path)  # type: ignore[arg-type]


def test_an_oversized_file_is_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = PromptCache(tmp_path, 1000)
    bound = cache.bind(SETTINGS)
    tokens = [7] * 64
    key = bound.keys(tokens, [64])[64]
    path = cache.path(key)
    header = {"format": 1, "key": key, "prefix_keys": [key], "n_tokens": 64, **SETTINGS}
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + bytes(1100 << 10))
    with caplog.at_level(logging.WARNING, logger="fireside.generation"):
        assert bound.find(tokens, [64]) is None
    assert "more than the cache may hold" in caplog.text
    assert not path.exists()
    assert cache.stats().rejected == 1 and cache.stats().misses == 1
    cache.close()
