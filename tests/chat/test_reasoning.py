"""Reasoning split from content, for each thinking-template family in the pinned tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fireside.chat.reasoning import (
    THINK,
    ReasoningSplitter,
    detect_markers,
    split_reasoning,
    starts_in_prompt,
    thinking_switches,
)
from fireside.chat.templates import ChatTemplate

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
# One template per marker family, and the markers it must be found to use.
FAMILIES = {
    "Qwen-Qwen3-0.6B": ("<think>", "</think>"),
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": ("<think>", "</think>"),
    "ByteDance-Seed-OSS": ("<seed:think>", "</seed:think>"),
    "MiniMax-M3": ("<mm:think>", "</mm:think>"),
    "Cohere2MoE": ("<|START_THINKING|>", "<|END_THINKING|>"),
    "mistralai-Ministral-3-14B-Reasoning-2512": ("[THINK]", "[/THINK]"),
    "google-gemma-4-31B-it": ("<|channel>thought", "<channel|>"),
}


def _source(name: str) -> str:
    path = TEMPLATES / f"{name}.jinja"
    if not path.is_file():
        pytest.fail(f"the pinned llama.cpp tree has no {path}")
    return path.read_text("utf-8")


def _stream(text: str, markers, cuts: list[int], **kw) -> tuple[str | None, str]:
    splitter = ReasoningSplitter(markers, **kw)
    reasoning, content, last = "", "", 0
    for cut in [*cuts, len(text)]:
        delta = splitter.feed(text[last:cut])
        reasoning += delta.reasoning
        content += delta.content
        last = cut
    delta = splitter.finish()
    reasoning += delta.reasoning
    content += delta.content
    return (reasoning if splitter.saw_reasoning else None), content


def _check_everywhere(text: str, markers, expected, **kw) -> None:
    whole = split_reasoning(text, markers, **kw)
    assert (whole.reasoning, whole.content) == expected
    for i in range(len(text) + 1):
        assert _stream(text, markers, [i], **kw) == expected, i
    assert _stream(text, markers, list(range(len(text))), **kw) == expected


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_thinking_family(name) -> None:
    markers = detect_markers(_source(name))
    assert markers is not None and (markers.start, markers.end) == FAMILIES[name]
    start, end = FAMILIES[name]
    text = f"{start}\nThe user wants 2+2. That is 4.\n{end}\n\nIt is 4."
    _check_everywhere(text, markers, ("The user wants 2+2. That is 4.", "It is 4."))
    # reasoning_format="none": the reply as it came
    _check_everywhere(text, markers, (None, text), reasoning_format="none")
    # a plain answer is untouched, and a marker later in the text is content
    _check_everywhere("Just 4.", markers, (None, "Just 4."))
    later = f"Answer: 4. {start}x{end}"
    _check_everywhere(later, markers, (None, later))


def test_thinking_opened_by_the_prompt() -> None:
    """DeepSeek-R1 distills end their generation prompt with <think>: the reply has only
    the closing marker."""
    template = ChatTemplate(_source("deepseek-ai-DeepSeek-R1-Distill-Llama-8B"), bos_token="<s>")
    prompt = template.render([{"role": "user", "content": "2+2?"}])
    assert starts_in_prompt(prompt, THINK)
    _check_everywhere(
        "Two and two.\n</think>\n\nIt is 4.", THINK, ("Two and two.", "It is 4."), started=True
    )
    _check_everywhere("<think>Again.</think>4", THINK, ("Again.", "4"), started=True)
    # cut short inside the thinking: all of it is reasoning
    _check_everywhere("Still thinking about <", THINK, ("Still thinking about <", ""), started=True)
    assert not starts_in_prompt("<|im_start|>assistant\n", THINK)


def test_qwen3_enable_thinking_switch() -> None:
    source = _source("Qwen-Qwen3-0.6B")
    switches = thinking_switches(source)
    assert switches.enable_thinking and not switches.reasoning_effort
    template = ChatTemplate(source)
    off = template.render([{"role": "user", "content": "hi"}], enable_thinking=False)
    on = template.render([{"role": "user", "content": "hi"}], enable_thinking=True)
    assert not starts_in_prompt(off, THINK) and off.rstrip().endswith("</think>")
    assert not starts_in_prompt(on, THINK)


def test_effort_switch_detected() -> None:
    assert thinking_switches(_source("openai-gpt-oss-120b")).reasoning_effort
    assert thinking_switches(_source("google-gemma-2-2b-it")).variables == ()


def test_every_pinned_thinking_template_is_recognised() -> None:
    """Every template with <think> or another known pair is detected (those with other
    formats, such as gpt-oss's channels, are listed as not handled)."""
    for path in sorted(TEMPLATES.glob("*.jinja")):
        source = path.read_text("utf-8")
        if re.search(r"</think>|</seed:think>|\[/THINK\]|<\|END_THINKING\|>", source):
            assert detect_markers(source) is not None, path.name


def test_partial_markers_never_leak() -> None:
    splitter = ReasoningSplitter(THINK)
    assert splitter.feed("<thi").content == ""
    assert splitter.feed("nk>Hmm").reasoning == "Hmm"
    delta = splitter.feed(" ok</thi")
    assert delta.reasoning == " ok" and delta.content == ""
    delta = splitter.feed("nk>Done")
    assert delta.reasoning == "" and delta.content == "Done"


def test_bad_reasoning_format() -> None:
    with pytest.raises(ValueError, match="reasoning_format must be 'auto' or 'none'"):
        split_reasoning("x", THINK, reasoning_format="deepseek")  # type: ignore[arg-type]
