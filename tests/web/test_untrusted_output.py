"""Model output is untrusted: HTML in a reply is shown as text and runs nothing."""

from __future__ import annotations

from typing import Any

from .conftest import LiveServer, PageWatch
from .web_helpers import open_chat, seed_state, wait_idle

ATTACKS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "<svg onload=\"window.__pwned = 'svg'\"></svg>",
    "[click me](javascript:window.__pwned='link')",
    "![tracker](http://127.0.0.1:9/pixel.png)",
    "<iframe src=\"javascript:parent.__pwned='iframe'\"></iframe>",
    "```html\n<script>window.__pwned = 'code'</script>\n```",
    "**<b onmouseover=\"window.__pwned='bold'\">hover</b>**",
]
REPLY = "Here you go:\n\n" + "\n\n".join(ATTACKS)


def assert_nothing_ran(page: Any, watch: PageWatch) -> None:
    assert page.evaluate("window.__pwned") is None
    assert not watch.dialogs, watch.dialogs
    assert not watch.page_errors, watch.page_errors
    assert not watch.console_errors, watch.console_errors  # includes CSP violations
    assert not [u for u in watch.requests if "pixel.png" in u or u.endswith("/x")]


def assert_shown_as_text(content: Any) -> None:
    html_elements = content.locator("script, img, svg, iframe, b, [onerror], [onload]")
    assert html_elements.count() == 0
    text = content.inner_text()
    for marker in [
        "<script>",
        "<img src=x onerror=",
        "<svg onload=",
        "<iframe src=",
        "<b onmouseover",
    ]:
        assert marker in text, f"{marker!r} is not shown as text in {text!r}"
    hrefs = content.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(h.startswith("http") for h in hrefs), hrefs


def test_html_in_a_saved_reply_is_text(
    page: Any, live_server: LiveServer, watch: PageWatch
) -> None:
    seed_state(
        page,
        {
            "version": 1,
            "activeId": "x",
            "conversations": [
                {
                    "id": "x",
                    "title": "<img src=x onerror=\"window.__pwned='title'\">",
                    "updated": 1,
                    "messages": [
                        {"role": "user", "content": "<script>window.__pwned='user'</script>"},
                        {"role": "assistant", "content": REPLY},
                    ],
                }
            ],
        },
    )
    open_chat(page, live_server.url)
    content = page.locator(".message.assistant .content")
    assert_shown_as_text(content)
    assert "<script>" in page.locator(".message.user .content").inner_text()
    assert page.locator(".conv-open").inner_text().startswith("<img src=x")
    # The [click me](javascript:...) label is kept as plain text, not as a link.
    assert "click me" in content.inner_text()
    assert content.locator("a", has_text="click me").count() == 0
    # The image is a link to click, never loaded.
    assert content.locator("a", has_text="[image: tracker]").count() == 1
    page.mouse.move(400, 300)
    assert_nothing_ran(page, watch)


def test_html_in_a_streamed_reply_is_text(
    page: Any, live_server: LiveServer, watch: PageWatch
) -> None:
    # The model cannot be made to say these exact bytes, so the stream is served through
    # request interception; the page's streaming path is the one under test.
    import json

    events = "".join(
        "data: "
        + json.dumps(
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": REPLY[i : i + 7]}}],
            }
        )
        + "\n\n"
        for i in range(0, len(REPLY), 7)
    )
    events += "data: [DONE]\n\n"
    open_chat(page, live_server.url)
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=events),
    )
    page.fill("#prompt", "Show me some HTML")
    page.press("#prompt", "Enter")
    wait_idle(page)
    assert_shown_as_text(page.locator(".message.assistant .content"))
    page.reload()  # and once more from storage
    page.wait_for_selector("#server-status[data-state=ok]")
    assert_shown_as_text(page.locator(".message.assistant .content"))
    assert_nothing_ran(page, watch)
