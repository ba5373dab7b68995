"""Our ``tokenize`` reproduces llama.cpp's reference tokenizations for every vocabulary it ships.

The vendored tree has ``models/ggml-vocab-*.gguf`` files; those with ``.inp``/``.out``
companions carry test cases. As in llama.cpp's ``tests/test-tokenizer-0``, the ``.inp`` file
holds the cases separated by the line ``__ggml_vocab_test__`` and the ``.out`` file one line of
space-separated expected ids per case; the texts are tokenized with ``add_special=False``
and ``parse_special=False``.
"""

from __future__ import annotations

import re
from pathlib import Path

from fireside import _core

SEPARATOR = b"\n__ggml_vocab_test__\n"


def read_cases(vocab: Path) -> list[tuple[bytes, list[int]]]:
    """The (text, expected ids) pairs of one vocabulary's ``.inp``/``.out`` files."""
    raw = vocab.with_name(vocab.name + ".inp").read_bytes()
    texts: list[bytes] = []
    pos = 0
    while pos < len(raw):  # a separator at the very end does not start another case
        end = raw.find(SEPARATOR, pos)
        if end < 0:
            texts.append(raw[pos:])
            break
        texts.append(raw[pos:end])
        pos = end + len(SEPARATOR)
    lines = vocab.with_name(vocab.name + ".out").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert len(texts) == len(lines), f"{vocab.name}: {len(texts)} inputs but {len(lines)} outputs"
    return [(text, [int(t) for t in line.split()]) for text, line in zip(texts, lines)]


def cleaned_spaces(text: bytes) -> bytes:
    """``text`` after llama.cpp's ``clean_up_tokenization_spaces`` (what some BPE vocabs
    apply when detokenizing): no space before ``?!.,``, ``" ' "`` -> ``"'"`` and no space
    before the contractions ``'s 'm 're 've``."""
    text = re.sub(rb" (?=[?!.,])", b"", text)
    text = text.replace(b" ' ", b"'")
    return re.sub(rb" '(?=s|m|re|ve)", b"'", text)


def case_problem(model: _core.Model, text: bytes, expected: list[int]) -> str | None:
    """What is wrong with one case, or None when it passes."""
    got = model.tokenize(text, add_special=False, parse_special=False)
    if got != expected:
        return f"{text!r} gave {got}, expected {expected}"
    try:
        as_str: str | None = text.decode("utf-8")
    except UnicodeDecodeError:
        as_str = None
    if as_str is not None and model.tokenize(as_str, add_special=False) != expected:
        return f"{text!r} tokenizes differently as str"
    # Detokenizing the reference ids gives the text back.
    if model.vocab_type == "wpm":
        # WordPiece lowercases, strips accents and drops whitespace: the ids, not the bytes,
        # survive the round trip ([UNK] comes back through its text).
        back = model.detokenize(expected, unparse_special=True)
        if model.tokenize(back, add_special=False, parse_special=True) != expected:
            return f"{text!r} -> {back!r} does not tokenize back to the same ids"
        return None
    back = model.detokenize(expected)
    if back not in (text, cleaned_spaces(text)):
        return f"{text!r} detokenized to {back!r}"
    pieces = b"".join(model.token_to_piece(t) for t in expected)
    if pieces not in (text, b" " + text):  # SPM pieces keep the prefix space
        return f"{text!r}: its token pieces join to {pieces!r}"
    return None


def test_every_vocabulary_matches_reference(llama_cpp_dir: Path) -> None:
    vocabs = sorted(
        p
        for p in (llama_cpp_dir / "models").glob("ggml-vocab-*.gguf")
        if p.with_name(p.name + ".inp").is_file()
    )
    assert len(vocabs) >= 10, f"only {len(vocabs)} vocabularies with test files"
    n_cases = n_vocabs_passed = 0
    problems: list[str] = []
    for vocab in vocabs:
        cases = read_cases(vocab)
        assert cases, f"{vocab.name} has no test cases"
        n_cases += len(cases)
        with _core.Model(vocab, vocab_only=True) as model:
            assert model.vocab_only
            found = [
                f"{vocab.name}: {p}" for text, ids in cases if (p := case_problem(model, text, ids))
            ]
        n_vocabs_passed += not found
        problems += found
    print(
        f"tokenizer conformance: {n_vocabs_passed}/{len(vocabs)} vocabularies, "
        f"{n_cases - len(problems)}/{n_cases} cases pass"
    )
    assert not problems, "\n".join(problems[:20])
