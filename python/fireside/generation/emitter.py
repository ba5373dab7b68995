"""The per-sequence emitter: sampled tokens in, text pieces and one finish reason out.

Every generation, in the library and in the server, goes through one
:class:`SequenceEmitter`: it detokenizes (never emitting a broken UTF-8 character), holds
back text that may still become a stop string, records log-probabilities, counts the
``max_tokens`` limit and decides how the sequence ends. The engine calls it once per
sampled token, so it is kept to a handful of calls per token.

How a generation ends, and what its last piece holds:

* ``"eos"``: the model ended its turn (the end token is not part of the output);
* ``"stop"``: a stop string matched (the text ends before it);
* ``"length"``: ``max_tokens`` tokens were generated (or the context filled up);
* ``"cancelled"``: the caller stopped it; the text is what had been emitted.

When the output ends inside a multi-byte character, its first bytes are dropped: text is
always whole characters (the token ids still include the token that began it). Text held
back for a possible stop string is released at the end unless a stop matched or the
generation was cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fireside.generation.detokenizer import StreamingDetokenizer
from fireside.generation.results import FinishReason, TokenLogprob
from fireside.generation.stops import StopHoldback

if TYPE_CHECKING:
    from fireside import _core


class SequenceEmitter:
    """Turns one sequence's sampled tokens into text and decides when it ends.

    ``top_logprobs``: ``None`` records no log-probabilities; ``n`` records each token's
    and its ``n`` best alternatives (read with :meth:`take_logprobs`).
    """

    __slots__ = (
        "_add",
        "_holdback",
        "_is_eog",
        "_logprobs",
        "_model",
        "_sent",
        "finish_reason",
        "max_tokens",
        "tokens",
        "top_logprobs",
    )

    def __init__(
        self,
        model: _core.Model,
        *,
        max_tokens: int,
        stops: Sequence[str] = (),
        top_logprobs: int | None = None,
    ) -> None:
        self._model = model
        self._is_eog = model.is_eog
        self._add = StreamingDetokenizer(model.token_to_piece).add
        self._holdback = StopHoldback(stops) if stops else None
        self._logprobs: list[TokenLogprob] = []
        self.max_tokens = max_tokens
        self.top_logprobs = top_logprobs
        self.tokens: list[int] = []
        """The generated tokens (without an end-of-generation token)."""
        self._sent = 0
        self.finish_reason: FinishReason | None = None
        """Why the sequence ended; ``None`` while it runs."""

    def on_token(self, token: int, ctx: _core.Context, index: int) -> str:
        """Take the token sampled at batch ``index``; return the text to emit now.

        After the call, :attr:`finish_reason` is set when this token ended the sequence
        (the returned text is then its last piece).
        """
        if self._is_eog(token):
            self.finish_reason = "eos"
            return self._tail()
        tokens = self.tokens
        tokens.append(token)
        if self.top_logprobs is not None:
            self._logprobs.append(self._logprob(ctx, index, token))
        text = self._add(token)
        holdback = self._holdback
        if text and holdback is not None:
            text, hit = holdback.push(text)
            if hit:
                self.finish_reason = "stop"
                return text
        if len(tokens) >= self.max_tokens:
            self.finish_reason = "length"
            return text + self._tail()
        return text

    def end(self, reason: FinishReason) -> str:
        """End the sequence from outside (``"cancelled"``, or ``"stop"``/``"length"``);
        return its last piece (nothing for ``"cancelled"``)."""
        self.finish_reason = reason
        return "" if reason in ("cancelled", "stop") else self._tail()

    def take_tokens(self) -> list[int]:
        """The tokens generated since the previous call (a chunk's tokens: a token that
        gave no text yet travels with the next chunk)."""
        taken = self.tokens[self._sent :]
        self._sent = len(self.tokens)
        return taken

    def take_logprobs(self) -> list[TokenLogprob]:
        """The log-probabilities recorded since the previous call."""
        taken, self._logprobs = self._logprobs, []
        return taken

    def _tail(self) -> str:
        # The detokenizer may still hold the first bytes of a character: they are dropped.
        holdback = self._holdback
        return "" if holdback is None else holdback.flush()

    def _logprob(self, ctx: _core.Context, index: int, token: int) -> TokenLogprob:
        logprob, top = ctx.logprobs(index, token, self.top_logprobs or 0)
        piece = self._piece
        return TokenLogprob(
            token=token, text=piece(token), logprob=logprob, top=[(piece(t), p) for t, p in top]
        )

    def _piece(self, token: int) -> str:
        return self._model.token_to_piece(token).decode("utf-8", errors="replace")
