"""The page's own modules (Markdown renderer, SSE parser, copy button), run in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LiveServer
from .web_helpers import open_chat, seed_state

RENDER = """
async (source) => {
  const { renderMarkdown } = await import("/static/markdown.js");
  const box = document.createElement("div");
  box.append(renderMarkdown(source));
  box.querySelectorAll(".code-head").forEach((head) => head.remove());
  return box.innerHTML;
}
"""

CASES = [
    (
        "# Title\n\nSome *em*, **strong**, `code` and ~~gone~~.",
        (
            "<h1>Title</h1><p>Some <em>em</em>, <strong>strong</strong>, <code>code</code> and"
            " <del>gone</del>.</p>"
        ),
    ),
    ("line one\nline two", "<p>line one<br>line two</p>"),
    ("- a\n  - b\n- c", "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>"),
    ("3. x\n4. y", '<ol start="3"><li>x</li><li>y</li></ol>'),
    ("1. x\n\n2. y", "<ol><li><p>x</p></li><li><p>y</p></li></ol>"),
    ("snake_case_name and _em_", "<p>snake_case_name and <em>em</em></p>"),
    ("2 * 3 * 4", "<p>2 * 3 * 4</p>"),
    ("\\*not em\\* and \\`tick\\`", "<p>*not em* and `tick`</p>"),
    ("> quoted\n> **text**", "<blockquote><p>quoted<br><strong>text</strong></p></blockquote>"),
    ("a\n\n---\n\nb", "<p>a</p><hr><p>b</p>"),
    ("``a `b` c``", "<p><code>a `b` c</code></p>"),
    (
        "```python\nif x < 1:\n    print('<b>')\n```\nafter",
        (
            '<div class="code-block"><pre><code data-lang="python">if x &lt; 1:\n'
            "    print('&lt;b&gt;')</code></pre></div><p>after</p>"
        ),
    ),
    (
        "```js\nlet a = 1;",  # unclosed while streaming: runs to the end
        '<div class="code-block streaming"><pre><code data-lang="js">let a = 1;</code></pre></div>',
    ),
    (
        "| a | b |\n|:--|--:|\n| 1 | `x|y` |",
        (
            '<div class="table-wrap"><table><thead><tr><th class="align-left">a</th>'
            '<th class="align-right">b</th></tr></thead><tbody><tr><td class="align-left">1</td>'
            '<td class="align-right"><code>x|y</code></td></tr></tbody></table></div>'
        ),
    ),
    (
        'See [docs](https://example.org/a_(b) "title") or https://example.org/x.',
        (
            '<p>See <a href="https://example.org/a_(b)" target="_blank" rel="noopener noreferrer'
            ' nofollow">docs</a> or <a href="https://example.org/x" target="_blank"'
            ' rel="noopener noreferrer nofollow">https://example.org/x</a>.</p>'
        ),
    ),
    ("[x](javascript:alert(1)) [y](data:text/html,hi) [z](/rel)", "<p>x y z</p>"),
    ("<b>bold?</b> &amp;", "<p>&lt;b&gt;bold?&lt;/b&gt; &amp;amp;</p>"),
    ("**unclosed bold", "<p>**unclosed bold</p>"),
]


@pytest.fixture(scope="module")
def render_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """One loaded page for all the renderer cases."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(live_server.url + "/")
    yield page
    context.close()


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_markdown_renders_to_safe_nodes(render_page: Any, source: str, expected: str) -> None:
    assert render_page.evaluate(RENDER, source) == expected


def test_markdown_bounded_on_hostile_nesting(render_page: Any) -> None:
    html = render_page.evaluate(
        RENDER, ">" * 5000 + " deep\n\n" + "- " * 3000 + "x\n\n" + "*" * 20000
    )
    assert "deep" in html and "x" in html
    assert html.count("<blockquote>") <= 20


def test_sse_parser_handles_split_events(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    events = page.evaluate(
        """
        async () => {
          const { sseData } = await import("/static/api.js");
          const text = ': comment\\r\\ndata: {"a": "é🔥"}\\r\\n\\r\\nevent: x\\ndata: line1\\n'
            + 'data: line2\\n\\ndata:[DONE]\\n\\n';
          const bytes = new TextEncoder().encode(text);
          // Cut everywhere: between \\r and \\n and inside multi-byte characters.
          const stream = new ReadableStream({
            start(controller) {
              for (let i = 0; i < bytes.length; i += 1) controller.enqueue(bytes.slice(i, i + 1));
              controller.close();
            },
          });
          const out = [];
          for await (const data of sseData(stream)) out.push(data);
          return out;
        }
        """
    )
    assert events == ['{"a": "é🔥"}', "line1\nline2", "[DONE]"]


def test_copy_button_copies_the_code(browser: Any, live_server: LiveServer) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    try:
        page = context.new_page()
        code = "def f(x):\n    return '<tag>' * x"
        seed_state(
            page,
            {
                "version": 1,
                "activeId": "k",
                "conversations": [
                    {
                        "id": "k",
                        "title": "Code",
                        "updated": 1,
                        "messages": [
                            {"role": "user", "content": "code please"},
                            {"role": "assistant", "content": f"```python\n{code}\n```"},
                        ],
                    }
                ],
            },
        )
        open_chat(page, live_server.url)
        assert page.locator(".code-lang").inner_text() == "python"
        page.click(".copy-btn")
        page.wait_for_selector(".copy-btn.done")
        assert page.locator(".copy-btn").inner_text() == "Copied"
        assert page.evaluate("navigator.clipboard.readText()") == code
    finally:
        context.close()


def test_corrupt_storage_is_reported_not_fatal(page: Any, live_server: LiveServer) -> None:
    page.add_init_script(
        "if (!sessionStorage.getItem('seeded')) {"
        " localStorage.setItem('fireside.chat.v1', '{not json');"
        " sessionStorage.setItem('seeded', '1'); }"
    )
    open_chat(page, live_server.url)
    assert "could not be read" in page.locator("#notice").inner_text()
    assert page.locator(".empty h2").is_visible()
    # The unreadable value is kept aside for the user, not silently lost.
    assert page.evaluate("localStorage.getItem('fireside.chat.v1.broken')") == "{not json"
