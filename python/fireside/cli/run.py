"""``fireside run [MODEL] PROMPT``: one answer, streamed to stdout."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fireside.cli.common import RpcOption, load_model, read_text_file, writer
from fireside.cli.errors import CLIError
from fireside.cli.reply_options import (
    ChatTemplateOption,
    ThinkOption,
    check_chat_template,
    check_think,
)
from fireside.cli.sources import DocsKOption, DocsOption, format_sources, open_grounding

if TYPE_CHECKING:
    from fireside.chat.grounding import Reference
    from fireside.generation.stream import GenerationStream

RAW_DEFAULT_MAX_TOKENS = 256
"""Without a chat template a model rarely ends by itself: stop here unless told."""


def _split_arguments(arguments: list[str]) -> tuple[str | None, str]:
    if len(arguments) == 1:
        return None, arguments[0]
    if len(arguments) == 2:
        return arguments[0], arguments[1]
    raise CLIError(
        f"expected [MODEL] PROMPT, got {len(arguments)} arguments (quote a prompt that has spaces)",
        exit_code=2,
    )


def _read_schema(path: str) -> dict[str, Any]:
    text = read_text_file(path, "--json-schema")
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise CLIError(f"--json-schema: {path} is not valid JSON: {e}") from e
    if not isinstance(schema, (dict, bool)):
        raise CLIError(f"--json-schema: {path} must hold a JSON object (a schema)")
    return schema  # type: ignore[return-value]


def run(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="[MODEL] PROMPT",
            help="Model name or .gguf path (optional), then the prompt; '-' reads it from stdin.",
        ),
    ],
    system: Annotated[str | None, typer.Option("--system", "-s", help="System message.")] = None,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="0 is greedy.")] = 0.8,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            "-n",
            min=1,
            help="Most tokens to generate (default: until the answer ends; 256 with --raw).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Makes the output reproducible.")
    ] = None,
    json_schema: Annotated[
        str | None,
        typer.Option(
            "--json-schema", metavar="FILE", help="Answer with JSON valid under this JSON Schema."
        ),
    ] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Continue the prompt as is (no chat template).")
    ] = False,
    ctx_size: Annotated[
        int | None, typer.Option("--ctx-size", "-c", min=64, help="Context size in tokens.")
    ] = None,
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
    """Answer one prompt, streaming the reply to stdout (with --docs: then its sources)."""
    name, prompt = _split_arguments(arguments)
    if prompt == "-":
        prompt = sys.stdin.read().rstrip("\r\n")  # `echo ... |` adds a newline
    if not prompt.strip():
        raise CLIError("the prompt is empty")
    if raw and system is not None:
        raise CLIError("--system needs the chat template; it cannot be used with --raw")
    if raw and docs:
        raise CLIError("--docs needs the chat template; it cannot be used with --raw")
    if raw and (chat_template is not None or think is not None):
        raise CLIError("--chat-template and --think need the chat template, not --raw")
    check_chat_template(chat_template)  # a typo fails before the load
    schema = _read_schema(json_schema) if json_schema is not None else None
    grounding = open_grounding(docs, docs_k)  # unknown collections fail before the load
    with ExitStack() as cleanup:
        if grounding is not None:
            cleanup.callback(grounding.close)
        model = load_model(
            name,
            n_ctx=ctx_size,
            seed=seed,
            n_threads=threads,
            rpc_servers=rpc,
            chat_template=chat_template,
        )
        cleanup.callback(model.close)
        sampling: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "json_schema": schema,
        }
        if raw:
            sampling["max_tokens"] = max_tokens or RAW_DEFAULT_MAX_TOKENS
            _show_text(model.generate(prompt, stream=True, **sampling))
            return
        session = model.chat_session(system, docs=grounding)
        check_think(session.chat_template, think)
        if think is not None:
            sampling["think"] = think
        stream = session.send(prompt, stream=True, **sampling)
        references: list[Reference] = session.last_references
        from fireside.cli.reply_view import ReplyView

        view = ReplyView()
        try:
            view.show_all(stream.deltas())
        except KeyboardInterrupt:
            stream.close()
            view.write("\n")
            raise
        if references:
            view.write("\n" + format_sources(references))


def _show_text(stream: GenerationStream) -> None:
    write = writer()
    last = ""
    try:
        for text in stream:
            write(text)
            last = text
    except KeyboardInterrupt:
        stream.close()
        write("\n")
        raise
    if not last.endswith("\n"):
        write("\n")


def register(app: typer.Typer) -> None:
    app.command("run", no_args_is_help=True)(run)
