"""StreamingDetokenizer: whole characters only, every byte decoded once."""

from __future__ import annotations

import time

import pytest
from fireside.generation.detokenizer import StreamingDetokenizer

TEXTS = [
    "你好，世界",  # CJK: 3 bytes per character
    "🎉👍🏽 family: 👨‍👩‍👧 ok",  # 4-byte emoji, a skin-tone modifier, ZWJ sequences
    "cafe\u0301 n\u0303 a\u0308\u0304",  # combining marks after their base letters
    "mixed ascii Ωμέγα ∑ 😀 end",
]


def detokenize(pieces: list[bytes]) -> list[str]:
    """Feed ``pieces`` as tokens 0..n-1; return every chunk emitted, the flush last."""
    detok = StreamingDetokenizer(lambda token: pieces[token])
    chunks = [detok.add(token) for token in range(len(pieces))]
    chunks.append(detok.flush())
    return chunks


def assert_clean(chunks: list[str], text: str) -> None:
    assert "".join(chunks) == text
    for chunk in chunks:
        assert "\ufffd" not in chunk, f"a broken character was emitted: {chunks!r}"


@pytest.mark.parametrize("text", TEXTS)
def test_one_split_at_every_position(text: str) -> None:
    data = text.encode()
    for cut in range(len(data) + 1):
        assert_clean(detokenize([data[:cut], data[cut:]]), text)


@pytest.mark.parametrize("text", TEXTS)
def test_two_splits_at_every_pair_of_positions(text: str) -> None:
    data = text.encode()
    for a in range(len(data) + 1):
        for b in range(a, len(data) + 1):
            assert_clean(detokenize([data[:a], data[a:b], data[b:]]), text)


@pytest.mark.parametrize("text", TEXTS)
def test_one_byte_per_token_emits_each_character_once_complete(text: str) -> None:
    data = text.encode()
    chunks = detokenize([data[i : i + 1] for i in range(len(data))])
    assert_clean(chunks, text)
    # a chunk is emitted exactly when a character's last byte arrives
    assert [c for c in chunks if c] == list(text)


def test_continuation_bytes_are_held_back_not_emitted() -> None:
    detok = StreamingDetokenizer(lambda token: [b"\xf0\x9f", b"\x98", b"\x80!"][token])
    assert detok.add(0) == ""
    assert detok.add(1) == ""
    assert detok.add(2) == "😀!"
    assert detok.flush() == ""


def test_invalid_bytes_become_replacement_characters() -> None:
    pieces = [b"ok \xff", b" \xe4\xb8", b"A"]  # a stray byte; a character cut short by 'A'
    chunks = detokenize(pieces)
    assert "".join(chunks) == "ok \ufffd \ufffdA"


def test_incomplete_character_at_the_end_is_flushed_as_replacement() -> None:
    detok = StreamingDetokenizer(lambda token: b"x\xe4\xb8")
    assert detok.add(0) == "x"
    assert detok.flush() == "\ufffd"
    assert detok.flush() == ""


def test_empty_pieces_are_fine() -> None:
    assert_clean(detokenize([b"", "é".encode(), b"", b""]), "é")


def test_cost_is_linear_each_byte_decoded_once() -> None:
    """100k tokens, most ending inside a character: one piece call and one pass each."""
    unit = "a语🙂 word".encode()  # cut so that three of four pieces end mid-character
    pieces = [unit[:2], unit[2:6], unit[6:9], unit[9:]] * 25_000
    calls = 0

    def piece(token: int) -> bytes:
        nonlocal calls
        calls += 1
        return pieces[token]

    detok = StreamingDetokenizer(piece)
    started = time.perf_counter()
    text = "".join(detok.add(t) for t in range(len(pieces))) + detok.flush()
    elapsed = time.perf_counter() - started
    assert text == "a语🙂 word" * 25_000
    assert calls == detok.n_tokens == 100_000
    assert detok.n_bytes == len(unit) * 25_000  # every byte went to the decoder once
    assert elapsed < 10, f"100k tokens took {elapsed:.1f}s: not linear"


def test_real_vocabulary_splits_characters_and_detokenizes_exactly(model_path) -> None:
    _core = pytest.importorskip("fireside._core", reason="the native module is not built")
    model = _core.Model(model_path, vocab_only=True)
    text = "Emoji 🎉👍🏽 and 中文字符 and café ñ."
    tokens = model.tokenize(text, add_special=False)
    pieces = [model.token_to_piece(t) for t in tokens]
    split = [p for p in pieces if _not_utf8(p)]
    assert split, "the test text should contain characters split across tokens"
    detok = StreamingDetokenizer(model.token_to_piece)
    chunks = [detok.add(t) for t in tokens] + [detok.flush()]
    assert_clean(chunks, text)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False
