"""How a context of ``n_ctx`` tokens is shared between a prompt and its reply.

The one place for the decisions that the engine, :class:`fireside.Model`, chat sessions
and the server all need:

* :func:`prompt_fits`: a prompt must leave room for at least one reply token;
* :func:`reply_limit`: a reply may take ``max_tokens`` tokens (``None``: all the room),
  never more than the prompt leaves in the context;
* :func:`reply_reserve`: when a prompt (or a conversation) is cut to fit, it leaves room for
  ``max_tokens`` reply tokens (``None`` or 0: a quarter of the context), but never more
  than half the context and never less than one token.
"""

from __future__ import annotations

RESERVE_SHARE = 4
"""Without ``max_tokens``, a cut prompt leaves ``n_ctx // RESERVE_SHARE`` tokens free."""
RESERVE_MAX_SHARE = 2
"""A cut prompt leaves at most ``n_ctx // RESERVE_MAX_SHARE`` tokens free."""


def prompt_fits(n_ctx: int, n_prompt: int) -> bool:
    """Whether a prompt of ``n_prompt`` tokens leaves room in ``n_ctx`` for a reply token
    (a prompt that does not is refused, or cut with :func:`reply_reserve` to spare)."""
    return n_prompt < n_ctx


def reply_reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens a prompt cut to fit ``n_ctx`` leaves free for the reply (see the module)."""
    wanted = max_tokens if max_tokens else n_ctx // RESERVE_SHARE
    return max(1, min(wanted, n_ctx // RESERVE_MAX_SHARE))


def reply_limit(n_ctx: int, n_prompt: int, max_tokens: int | None) -> int:
    """The most tokens a reply to ``n_prompt`` prompt tokens may take in ``n_ctx``:
    ``max_tokens`` (``None``: no limit of its own) capped by the room left (never below 0)."""
    room = max(0, n_ctx - n_prompt)
    return room if max_tokens is None else min(max_tokens, room)
