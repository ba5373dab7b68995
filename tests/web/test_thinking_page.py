"""A reasoning model's thinking in the chat page: streamed ``reasoning_content`` shown dimmed
in a collapsible block above the answer, in headless Chromium against the real server.

The server runs DeepSeek-R1-Distill-Llama's template from the pinned llama.cpp, whose
generation prompt always opens ``<think>``: what the model writes first is reasoning.
SmolLM2 never writes ``</think>`` by itself, so the test lets the page's own request
through to the real server with one field added, a ``response_format`` whose ``pattern``
contains ``</think>`` (the grammar shapes the model's text; nothing in the answer is
mocked). The page then receives reasoning deltas, then content deltas, as from any
thinking model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LiveServer, PageWatch, start_server
from .web_helpers import open_chat, send, set_max_tokens, wait_idle

TEMPLATE = (
    Path(__file__).resolve().parents[2]
    / "vendor"
    / "llama.cpp"
    / "models"
    / "templates"
    / "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"
)
PATTERN = "^[a-z ]{12,60}</think>[A-Za-z ]{8,40}$"

# Records, on every change while a reply streams, whether the thinking block is open and
# how long the thinking text and the answer are.
OBSERVE = """
() => {
  window.__seen = [];
  const thread = document.getElementById("thread");
  new MutationObserver(() => {
    if (document.body.dataset.streaming !== "true") return;
    const replies = thread.querySelectorAll(".message.assistant");
    const last = replies[replies.length - 1];
    if (!last) return;
    const details = last.querySelector("details.thinking");
    window.__seen.push({
      open: details ? details.open : null,
      thinking: details ? details.querySelector(".thinking-text").textContent.length : 0,
      answer: last.querySelector(".content").textContent.length,
    });
  }).observe(thread, { childList: true, subtree: true, characterData: true, attributes: true });
}
"""


@pytest.fixture(scope="module")
def thinking_server(model_path: Path) -> Iterator[LiveServer]:
    server = start_server(model_path, chat_template=TEMPLATE.read_text(encoding="utf-8"))
    yield server
    server.stop()


def test_thinking_is_dimmed_and_folded_above_the_answer(
    page: Any, thinking_server: LiveServer, watch: PageWatch
) -> None:
    def add_format(route: Any) -> None:
        body = json.loads(route.request.post_data or "{}")
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "t", "schema": {"type": "string", "pattern": PATTERN}},
        }
        route.continue_(post_data=json.dumps(body))

    page.route("**/v1/chat/completions", add_format)
    open_chat(page, thinking_server.url)
    set_max_tokens(page, 80)
    page.evaluate(OBSERVE)
    send(page, "Name a color.")
    wait_idle(page)

    reply = page.locator(".message.assistant").last
    details = reply.locator("details.thinking")
    assert details.count() == 1
    thinking = details.locator(".thinking-text").text_content() or ""
    answer = reply.locator(".content").inner_text()
    assert thinking.strip() and answer.strip()
    assert "</think>" not in thinking and "</think>" not in answer
    assert "<think>" not in answer

    # While it streamed: the block was open while only thinking had arrived, and closed
    # itself once the answer began; the thinking grew in pieces before the answer.
    seen = page.evaluate("window.__seen")
    thinking_only = [s for s in seen if s["thinking"] and not s["answer"]]
    answering = [s for s in seen if s["answer"]]
    assert thinking_only and all(s["open"] for s in thinking_only), seen
    assert answering and not answering[-1]["open"], seen
    assert len({s["thinking"] for s in thinking_only}) > 1, "thinking was not streamed"

    # Above the answer, dimmed, folded when done, and opened by its summary.
    box = details.bounding_box()
    content_box = reply.locator(".content").bounding_box()
    assert box is not None and content_box is not None and box["y"] < content_box["y"]
    assert not details.evaluate("d => d.open")
    colors = reply.evaluate(
        """r => [getComputedStyle(r.querySelector("details.thinking")).color,
                 getComputedStyle(r.querySelector(".content")).color]"""
    )
    assert colors[0] != colors[1], colors
    details.locator("summary").click()
    assert details.evaluate("d => d.open")
    assert details.locator(".thinking-text").is_visible()

    # The request was the page's own (plus the added format), and the thinking is kept
    # in the saved conversation but not sent back as content.
    (body,) = watch.chat_requests
    assert body["messages"] == [{"role": "user", "content": "Name a color."}]
    page.reload()
    page.wait_for_selector("#server-status[data-state=ok]")
    again = page.locator(".message.assistant").last.locator("details.thinking .thinking-text")
    assert (again.text_content() or "") == thinking
