"""How the CLI shows a chat reply as it streams: the thinking dimmed and apart, the answer
as it is, tool calls as one line each.

The answer goes to stdout (so ``fireside run ... > answer.txt`` keeps only the answer);
a thinking model's reasoning and the tool calls go to stderr, dimmed where stderr is a
terminal (rich decides; plain text elsewhere), under a ``Thinking...`` line and
followed by a blank line before the answer starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rich.console import Console

from fireside.cli.common import writer

if TYPE_CHECKING:
    from fireside.chat.reply import ReplyDelta

THINKING_HEADER = "Thinking..."


class ReplyView:
    """Writes one reply's deltas (see the module docs)."""

    def __init__(
        self, write: Callable[[str], None] | None = None, console: Console | None = None
    ) -> None:
        self.write = write or writer()
        self.console = console or Console(file=sys.stderr, highlight=False, soft_wrap=True)
        self._thinking = False
        self.last = ""
        """The last text written to stdout ("" if none)."""

    def show(self, delta: ReplyDelta) -> None:
        """Write one delta."""
        if delta.reasoning:
            if not self._thinking:
                self.console.print(THINKING_HEADER, style="dim italic", markup=False)
                self._thinking = True
            self.console.print(delta.reasoning, style="dim", end="", markup=False)
        if delta.content:
            self._end_thinking()
            self.write(delta.content)
            self.last = delta.content
        for call in delta.tool_calls:
            self._end_thinking()
            function = call.get("function") or {}
            line = f"[tool call] {function.get('name', '')}({function.get('arguments', '')})"
            self.console.print(line, style="dim", markup=False)

    def _end_thinking(self) -> None:
        if self._thinking:
            self.console.print("\n", style="dim", markup=False)
            self._thinking = False

    def show_all(self, deltas: Iterable[ReplyDelta]) -> None:
        """Write every delta, then end the line of the answer."""
        for delta in deltas:
            self.show(delta)
        self._end_thinking()
        if self.last and not self.last.endswith("\n"):
            self.write("\n")
