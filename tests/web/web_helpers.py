"""Small page actions shared by the browser tests."""

from __future__ import annotations

import json
from typing import Any

# Records the length of the newest assistant reply on every DOM change while a reply
# streams, so a test can prove that partial text was shown before the reply finished.
OBSERVE_STREAMING = """
() => {
  window.__lengths = [];
  const thread = document.getElementById("thread");
  new MutationObserver(() => {
    if (document.body.dataset.streaming !== "true") return;
    const replies = thread.querySelectorAll(".message.assistant .content");
    const last = replies[replies.length - 1];
    if (last) window.__lengths.push(last.textContent.length);
  }).observe(thread, { childList: true, subtree: true, characterData: true });
}
"""


def open_chat(page: Any, url: str) -> None:
    """Load the page and wait until it has listed the server's models."""
    page.goto(url + "/")
    page.wait_for_selector("#server-status[data-state=ok]")


def open_settings(page: Any) -> None:
    if page.locator("#settings").is_hidden():
        page.click("#settings-toggle")


def set_max_tokens(page: Any, n: int) -> None:
    open_settings(page)
    page.fill("#max-tokens", str(n))


def send(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def wait_idle(page: Any, timeout_ms: int = 120_000) -> None:
    """Wait until no reply is streaming (the page sets body[data-streaming])."""
    page.wait_for_selector("body[data-streaming=false]", state="attached", timeout=timeout_ms)


def saved_state(page: Any) -> dict[str, Any]:
    raw = page.evaluate("() => localStorage.getItem('fireside.chat.v1')")
    return json.loads(raw) if raw else {}


def seed_state(page: Any, state: dict[str, Any]) -> None:
    """Put conversations into localStorage before any page script runs (first load only)."""
    script = (
        "if (!sessionStorage.getItem('seeded')) {"
        f" localStorage.setItem('fireside.chat.v1', {json.dumps(json.dumps(state))});"
        " sessionStorage.setItem('seeded', '1'); }"
    )
    page.add_init_script(script)
