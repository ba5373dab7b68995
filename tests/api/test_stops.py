"""StopHoldback: stops are never emitted, and only a possible stop prefix is held back."""

from __future__ import annotations

import random

import pytest
from fireside.generation.stops import StopHoldback


def run(stops: list[str], chunks: list[str]) -> tuple[str, bool, list[str]]:
    """Push ``chunks``; return (everything emitted, hit, per-push emissions)."""
    holdback = StopHoldback(stops)
    emitted = []
    hit = False
    for chunk in chunks:
        safe, hit = holdback.push(chunk)
        emitted.append(safe)
        if hit:
            break
    if not hit:
        emitted.append(holdback.flush())
    return "".join(emitted), hit, emitted


def test_empty_stop_list_passes_text_through_unchanged() -> None:
    holdback = StopHoldback([])
    for chunk in ["Hello", " <", "/s>", ""]:
        assert holdback.push(chunk) == (chunk, False)
    assert holdback.flush() == ""


@pytest.mark.parametrize("bad", [[""], ["ok", ""]])
def test_empty_stop_string_is_rejected(bad: list[str]) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        StopHoldback(bad)


def test_a_single_string_and_non_strings_are_rejected() -> None:
    with pytest.raises(ValueError, match="not a string"):
        StopHoldback("stop")
    with pytest.raises(ValueError, match="must be a string"):
        StopHoldback(["ok", 3])  # type: ignore[list-item]


def test_stop_inside_one_push_cuts_before_it() -> None:
    holdback = StopHoldback(["END"])
    assert holdback.push("Hello END and more") == ("Hello ", True)
    assert holdback.matched == "END"
    assert holdback.push("ignored") == ("", True)
    assert holdback.flush() == ""


def test_stop_spanning_several_pushes_is_never_emitted() -> None:
    holdback = StopHoldback(["</s>"])
    assert holdback.push("Answer<") == ("Answer", False)
    assert holdback.held == "<"
    assert holdback.push("/") == ("", False)
    assert holdback.push("s") == ("", False)
    assert holdback.held == "</s"
    assert holdback.push(">tail") == ("", True)
    assert holdback.matched == "</s>"


def test_prefix_ruled_out_is_released() -> None:
    holdback = StopHoldback(["</s>"])
    assert holdback.push("a <") == ("a ", False)
    assert holdback.push("/x") == ("</x", False)
    assert holdback.held == ""
    assert holdback.push("<") == ("", False)
    assert holdback.flush() == "<"


def test_holds_back_only_the_longest_possible_stop_prefix() -> None:
    holdback = StopHoldback(["Observation:"])
    assert holdback.push("The Obs") == ("The ", False)
    assert holdback.held == "Obs"
    assert holdback.push("erve") == ("Observe", False)
    assert holdback.held == ""


def test_earliest_of_several_stops_wins() -> None:
    assert run(["world", "lo"], ["hello world"])[:2] == ("hel", True)
    assert run(["\n\n", "User:"], ["Sure.\n", "\nUser: hi"])[:2] == ("Sure.", True)


def test_overlapping_stop_prefixes() -> None:
    # "abcd" and "bce" share "bc": the text must stop at "bce", not wait for "abcd"
    text, hit, emitted = run(["abcd", "bce"], ["a", "b", "c", "e", "z"])
    assert (text, hit) == ("a", True)
    assert emitted == ["", "", "", "a"]
    # a stop that overlaps itself
    assert run(["aab"], list("xaaab"))[:2] == ("xa", True)
    # one stop a prefix of another: the shorter one matches first
    assert run(["ab", "abc"], ["xa", "bc"])[:2] == ("x", True)


def test_unicode_stops() -> None:
    assert run(["。"], ["你好", "。再见"])[:2] == ("你好", True)
    assert run(["🛑"], ["go 🟢 ", "🛑 no"])[:2] == ("go 🟢 ", True)


def test_duplicate_stops_are_fine() -> None:
    assert StopHoldback(["x", "x"]).stops == ("x",)
    assert run(["x", "x"], ["abxcd"])[:2] == ("ab", True)


def _longest_held(text: str, stops: list[str]) -> int:
    best = 0
    for stop in stops:
        for n in range(1, len(stop)):
            if text.endswith(stop[:n]):
                best = max(best, n)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_match_a_reference(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "ab c"
    stops = list(
        {"".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(rng.randint(1, 3))}
    )
    text = "".join(rng.choices(alphabet, k=rng.randint(0, 60)))
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 12))))
    chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]

    positions = [p for p in (text.find(s) for s in stops) if p != -1]
    expected = text[: min(positions)] if positions else text

    holdback = StopHoldback(stops)
    emitted, seen, hit = "", "", False
    for chunk in chunks:
        safe, hit = holdback.push(chunk)
        emitted += safe
        seen += chunk
        assert expected.startswith(emitted), "emitted text past a stop"
        if hit:
            break
        # nothing is held except the longest suffix that may still become a stop
        assert emitted + holdback.held == seen
        assert len(holdback.held) == _longest_held(seen, stops)
    if not hit:
        emitted += holdback.flush()
    assert emitted == expected
    assert hit == bool(positions)
