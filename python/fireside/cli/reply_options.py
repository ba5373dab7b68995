"""Chat options the commands share: ``--chat-template`` and ``--think/--no-think``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fireside.cli.errors import CLIError

if TYPE_CHECKING:
    from fireside.chat.templates import ChatTemplate

CHAT_TEMPLATE_HELP = (
    "The chat template to use instead of the model's: Jinja text, a built-in name "
    "(chatml, llama3, ...) or the path of a .jinja file."
)

ChatTemplateOption = Annotated[
    str | None, typer.Option("--chat-template", metavar="TEMPLATE", help=CHAT_TEMPLATE_HELP)
]
ThinkOption = Annotated[
    bool | None,
    typer.Option(
        "--think/--no-think",
        help="Turn a reasoning model's thinking on or off (where its template can; "
        "default: the template's own choice). Thinking is shown dimmed on stderr.",
        show_default=False,
    ),
]


def check_chat_template(value: str | None) -> None:
    """Fail before the model loads when ``--chat-template`` names no usable template (an
    unknown built-in name, a file that does not exist or cannot be read)."""
    if value is None:
        return
    from fireside.chat.templates import ChatTemplate

    try:
        ChatTemplate.from_override(value)
    except ValueError as e:
        raise CLIError(f"--chat-template: {e}", exit_code=2) from e


def check_think(template: ChatTemplate, think: bool | None) -> None:
    """Fail before the first reply when the template cannot switch thinking as asked."""
    if think is None:
        return
    from fireside.chat.reply import thinking_variables

    try:
        thinking_variables(template, think=think)
    except ValueError as e:
        raise CLIError(f"--{'think' if think else 'no-think'}: {e}", exit_code=2) from e
