"""``fireside chat [MODEL]``: an interactive conversation in the terminal.

Replies stream as they are generated and the history is kept (the model reuses its KV
cache from one turn to the next). Ctrl-C stops the reply being written (the part already
shown stays in the history) and returns to the prompt; Ctrl-D or ``/exit`` leaves.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fireside.cli.common import RpcOption, load_model, writer
from fireside.cli.reply_options import (
    ChatTemplateOption,
    ThinkOption,
    check_chat_template,
    check_think,
)
from fireside.cli.sources import DocsKOption, DocsOption, format_sources, open_grounding
from fireside.errors import FiresideError

if TYPE_CHECKING:
    from fireside.chat.session import ChatSession
    from fireside.model import Model

PROMPT = ">>> "
CONTINUATION = "... "
FENCE = '"""'

HELP = f"""\
Type a message and press Enter. For several lines, end a line with \\ to continue it, or
put {FENCE} alone on the lines before and after the text.
  /help          show this help
  /reset         forget the conversation (keeps the system message)
  /system TEXT   set the system message (/system alone shows it)
  /save FILE     save the conversation as JSON
  /load FILE     load a conversation saved with /save
  /exit          leave (or press Ctrl-D)
Ctrl-C stops a reply that is being written."""


def _info(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def read_message(read: Callable[[str], str] = input) -> str:
    """One message from the terminal: a line, lines joined by a trailing ``\\``, or a
    block between two ``\"\"\"`` lines. Raises ``EOFError`` on Ctrl-D."""
    line = read(PROMPT)
    if line.strip() == FENCE:
        lines = []
        while (line := read(CONTINUATION)).strip() != FENCE:
            lines.append(line)
        return "\n".join(lines)
    lines = []
    while line.endswith("\\"):
        lines.append(line[:-1])
        line = read(CONTINUATION)
    lines.append(line)
    return "\n".join(lines)


class _Interrupt:
    """While active, Ctrl-C cancels the running reply instead of raising
    KeyboardInterrupt (the generation ends cleanly and keeps what it wrote)."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel = cancel
        self.hit = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: object) -> None:
        self.hit = True
        # cancel() takes a lock the interrupted code may hold: call it from another thread
        threading.Thread(target=self._cancel, daemon=True).start()

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


class ChatLoop:
    """The conversation with its commands; separate from the terminal for testing."""

    def __init__(self, model: Model, session: ChatSession, options: dict[str, Any], stats: bool):
        self.model = model
        self.session = session
        self.options = options
        self.stats = stats
        self.write = writer()

    def command(self, line: str) -> bool:
        """Run a /command; return ``False`` to leave."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit", "/bye"):
            return False
        if name in ("/help", "/?"):
            _info(HELP)
        elif name == "/reset":
            self.session.reset()
            _info("(conversation cleared)")
        elif name == "/system":
            if not arg:
                current = self.session.system_prompt
                _info(f"(system message: {current!r})" if current else "(no system message)")
            else:
                rest = [m for m in self.session.history if m["role"] != "system"]
                self.session.history = [{"role": "system", "content": arg}, *rest]
                _info("(system message set)")
        elif name == "/save":
            if not arg:
                _info("usage: /save FILE")
            else:
                self.session.save(arg)
                _info(f"(saved {len(self.session.history)} messages to {arg})")
        elif name == "/load":
            if not arg:
                _info("usage: /load FILE")
            else:
                from fireside.chat.session import ChatSession

                docs = self.session.docs
                self.session = ChatSession.load(arg, self.model)
                self.session.docs = docs
                _info(f"(loaded {len(self.session.history)} messages from {arg})")
        else:
            _info(f"unknown command {name}; /help lists the commands")
        return True

    def reply(self, message: str) -> None:
        from fireside.cli.reply_view import ReplyView

        stream = self.session.send(message, stream=True, **self.options)
        interrupt = _Interrupt(stream.cancel)
        with interrupt:
            ReplyView(self.write).show_all(stream.deltas())
        if interrupt.hit:
            _info("(stopped)")
        if self.session.docs is not None and self.session.last_references:
            self.write("\n" + format_sources(self.session.last_references))
        result = self.session.last_result
        if self.stats and result is not None:
            t = result.timings
            threads = f"{t.n_threads} threads"
            if t.n_threads_batch != t.n_threads:
                threads += f", prompt on {t.n_threads_batch}"
            _info(
                f"({result.usage.completion_tokens} tokens, {t.tokens_per_second:.1f} tokens/s, "
                f"first token after {t.time_to_first_token_ms:.0f} ms, "
                f"prompt {result.usage.prompt_tokens} tokens, {threads}"
                + (
                    f", {t.accepted_tokens} of {t.draft_tokens} drafted tokens accepted)"
                    if t.draft_tokens
                    else ")"
                )
            )

    def loop(self) -> None:
        while True:
            try:
                message = read_message()
            except EOFError:
                _info("")
                return
            except KeyboardInterrupt:  # at the prompt: drop the line, keep going
                _info("\n(Ctrl-D or /exit to leave)")
                continue
            if not message.strip():
                continue
            if message.lstrip().startswith("/"):
                try:
                    if not self.command(message):
                        return
                except (OSError, ValueError, TypeError) as e:
                    from fireside.cli.errors import describe

                    _info(f"error: {describe(e)}")
                continue
            try:
                self.reply(message)
            except KeyboardInterrupt:  # before the reply started streaming
                _info("\n(stopped)")
            except (FiresideError, ValueError) as e:  # e.g. a message too long for the context
                _info(f"error: {e}")


def chat(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL", help="Model name or .gguf path (default: the default model)."
        ),
    ] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System message.")] = None,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="0 is greedy.")] = 0.8,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", "-n", min=1, help="Most tokens per reply.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Makes the replies reproducible.")
    ] = None,
    ctx_size: Annotated[
        int | None, typer.Option("--ctx-size", "-c", min=64, help="Context size in tokens.")
    ] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Show tokens/s after each reply.")] = False,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="CPU threads (default: auto, <= physical cores)."),
    ] = None,
    rpc: RpcOption = None,
    docs: DocsOption = None,
    docs_k: DocsKOption = None,
    chat_template: ChatTemplateOption = None,
    think: ThinkOption = None,
) -> None:
    """Chat with a model in the terminal (with --docs: answers cite your documents)."""
    try:
        import readline  # noqa: F401 - line editing and history for input()
    except ImportError:  # Windows
        pass
    # Ctrl-C must work at the prompt even when the parent started us with SIGINT ignored
    # (any `cmd &` of a non-interactive shell does), or it would only stop replies.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    check_chat_template(chat_template)  # a typo fails before the load
    grounding = open_grounding(docs, docs_k)  # unknown collections fail before the load
    try:
        loaded = load_model(
            model,
            n_ctx=ctx_size,
            seed=seed,
            n_threads=threads,
            rpc_servers=rpc,
            chat_template=chat_template,
        )
        try:
            session = loaded.chat_session(system, docs=grounding)
            check_think(session.chat_template, think)
            options: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
            if think is not None:
                options["think"] = think
            using = f" (answering from {', '.join(grounding.names)})" if grounding else ""
            _info(f"Chatting with {loaded.name}{using}. /help for commands, Ctrl-D to leave.")
            ChatLoop(loaded, session, options, stats).loop()
        finally:
            loaded.close()
    finally:
        if grounding is not None:
            grounding.close()


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
