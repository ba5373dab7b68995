"""Text embeddings: many texts per decode, one pooled vector per text.

:class:`Embedder` keeps its own embedding context (separate from any generation context)
whose KV cache holds several sequences at once: texts are packed into batches of up to
``batch_tokens`` tokens and ``max_batch_texts`` texts, each text its own sequence, so
embedding a hundred short texts takes a handful of decodes. Works with embedding GGUFs
(their own pooling) and with generative models (mean pooling over the tokens).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from fireside import _core
from fireside.defaults import default_n_threads
from fireside.errors import ClosedError
from fireside.model_path import LoadedModel, resolve_model_path
from fireside.placement import gpu_layers, pick_devices

if TYPE_CHECKING:
    from typing_extensions import Self

    from fireside.model import Model

POOLINGS = ("mean", "cls", "last")
"""Pooling methods :meth:`Embedder.embed` accepts (``None``: the model's own, else mean)."""


class Embedder:
    """Embeds texts with a model.

    Args:
        model: a :class:`fireside.Model`, a native model, or a path / catalog name (then
            the Embedder loads it and owns it, onto the devices :class:`fireside.Model`
            would use: :mod:`fireside.placement`).
        n_threads: CPU threads (default: the physical cores).
        batch_tokens: tokens per decode, and the longest text embedded in one piece.
            Default: the trained context up to 2048 for embedding models, 512 for
            generative models (their logits for every token cost memory).
        max_batch_texts: the most texts (sequences) in one decode.
    """

    def __init__(
        self,
        model: Model | _core.Model | str | os.PathLike[str],
        *,
        n_threads: int | None = None,
        batch_tokens: int | None = None,
        max_batch_texts: int = 32,
    ) -> None:
        self._owned: _core.Model | None = None
        if isinstance(model, LoadedModel):  # a fireside.Model
            core = model.core
            n_threads = n_threads or model.n_threads
        elif isinstance(model, _core.Model):
            core = model
        elif isinstance(model, (str, os.PathLike)):
            path = resolve_model_path(model)
            devices, offload = pick_devices(None, [])  # where Model would put its layers
            core = self._owned = _core.Model(
                path, n_gpu_layers=gpu_layers(None, offload), devices=devices
            )
        else:
            raise TypeError(f"model must be a Model, a path or a name, got {type(model).__name__}")
        if not isinstance(max_batch_texts, int) or max_batch_texts < 1:
            raise ValueError(f"max_batch_texts must be a positive integer, got {max_batch_texts!r}")
        self._core = core
        self._n_threads = n_threads or default_n_threads()
        metadata = core.metadata
        # mean (1), cls (2) or last (3); none (0) and rank (4) give no text vector
        self._declares_pooling = any(
            key.endswith(".pooling_type") and value in ("1", "2", "3")
            for key, value in metadata.items()
        )
        n_train = core.n_ctx_train or 512
        if batch_tokens is None:
            batch_tokens = min(n_train, 2048) if self._declares_pooling else min(n_train, 512)
        if not isinstance(batch_tokens, int) or batch_tokens < 1:
            raise ValueError(f"batch_tokens must be a positive integer, got {batch_tokens!r}")
        self._batch_tokens = batch_tokens
        self._max_texts = max_batch_texts
        self._contexts: dict[str, _core.Context] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.n_decodes = 0
        """Decode calls made so far (proof of batching)."""

    @property
    def model_path(self) -> str:
        """The GGUF file of the model that embeds."""
        return str(self._core.path)

    @property
    def n_embd(self) -> int:
        """Length of the embedding vectors."""
        return self._core.n_embd_out or self._core.n_embd

    @property
    def max_text_tokens(self) -> int:
        """The longest text (in tokens) embedded in one piece."""
        return self._batch_tokens

    def _context(self, pooling: str | None) -> _core.Context:
        if pooling is None:
            key = "unspecified" if self._declares_pooling else "mean"
        elif pooling in POOLINGS:
            key = pooling
        else:
            raise ValueError(
                f"pooling must be None or one of {', '.join(POOLINGS)}, got {pooling!r}"
            )
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = _core.Context(
                self._core,
                n_ctx=self._batch_tokens,
                n_batch=self._batch_tokens,
                n_ubatch=self._batch_tokens,  # non-causal models need a whole text per ubatch
                n_seq_max=min(self._max_texts, self._batch_tokens),  # a text has >= 1 token
                n_threads=self._n_threads,
                n_threads_batch=self._n_threads,
                embeddings=True,
                pooling=key,
                kv_unified=True,
            )
            self._contexts[key] = ctx
        return ctx

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        normalize: bool = True,
        pooling: str | None = None,
        long_text: Literal["truncate", "average"] = "truncate",
    ) -> npt.NDArray[np.float32]:
        """Embed ``texts``: a float32 array of shape ``(len(texts), n_embd)``, or
        ``(n_embd,)`` when ``texts`` is one str.

        ``normalize`` scales each vector to unit length. ``pooling``: ``None`` (the
        model's own; mean for generative models), ``"mean"``, ``"cls"`` or ``"last"``.
        A text longer than :attr:`max_text_tokens` is cut to its start
        (``long_text="truncate"``) or embedded in pieces whose vectors are averaged,
        weighted by their lengths (``"average"``).
        """
        single = isinstance(texts, str)
        items = [texts] if single else texts
        if not isinstance(items, Sequence):
            raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
        if long_text not in ("truncate", "average"):
            raise ValueError(f"long_text must be 'truncate' or 'average', got {long_text!r}")
        with self._lock:
            if self._closed:
                raise ClosedError("the embedder is closed")
            ctx = self._context(pooling)
            owners, pieces = self._split(items, long_text)  # type: ignore[arg-type]
            vectors = self._run(ctx, pieces)
        out = np.zeros((len(items), vectors.shape[1] if len(pieces) else self.n_embd), np.float32)
        if long_text == "average":
            weights = np.zeros(len(items), np.float32)
            for owner, piece, vector in zip(owners, pieces, vectors):
                out[owner] += vector * len(piece)
                weights[owner] += len(piece)
            out /= np.maximum(weights, 1.0)[:, None]
        elif len(pieces):
            out[:] = vectors
        if normalize and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out

    def _split(self, texts: Sequence[str], long_text: str) -> tuple[list[int], list[list[int]]]:
        """Tokenize; return each piece's text index and its tokens."""
        owners: list[int] = []
        pieces: list[list[int]] = []
        limit = self._batch_tokens
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
            tokens = self._core.tokenize(text, add_special=True, parse_special=False)
            if not tokens:
                raise ValueError(f"texts[{i}] is empty: it has no tokens to embed")
            if len(tokens) <= limit or long_text == "truncate":
                owners.append(i)
                pieces.append(tokens[:limit])
                continue
            for start in range(0, len(tokens), limit):
                owners.append(i)
                pieces.append(tokens[start : start + limit])
        return owners, pieces

    def _run(self, ctx: _core.Context, pieces: list[list[int]]) -> npt.NDArray[np.float32]:
        """Pooled vectors of token pieces, packing as many as fit into each decode."""
        rows: list[npt.NDArray[np.float32]] = []
        batch: list[list[int]] = []
        size = 0
        for piece in pieces:
            if batch and (size + len(piece) > self._batch_tokens or len(batch) == self._max_texts):
                rows.extend(self._decode(ctx, batch))
                batch, size = [], 0
            batch.append(piece)
            size += len(piece)
        if batch:
            rows.extend(self._decode(ctx, batch))
        if not rows:
            return np.zeros((0, self.n_embd), np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def _decode(self, ctx: _core.Context, batch: list[list[int]]) -> list[npt.NDArray[np.float32]]:
        tokens: list[int] = []
        positions: list[int] = []
        seq_ids: list[int] = []
        for seq, piece in enumerate(batch):
            tokens.extend(piece)
            positions.extend(range(len(piece)))
            seq_ids.extend([seq] * len(piece))
        self._forget(ctx)
        ctx.decode(tokens, positions=positions, seq_ids=seq_ids, logits=[True] * len(tokens))
        self.n_decodes += 1
        return [ctx.seq_embedding(seq) for seq in range(len(batch))]

    @staticmethod
    def _forget(ctx: _core.Context) -> None:
        """Clear the KV cache between decodes; encoder-only models (BERT) have none."""
        try:
            ctx.memory_clear()
        except ClosedError:
            raise
        except ValueError:  # "this context has no KV cache": nothing to forget
            pass

    def close(self) -> None:
        """Free the embedding contexts (and the model, if this Embedder loaded it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for ctx in self._contexts.values():
                ctx.close()
            self._contexts.clear()
            if self._owned is not None:
                self._owned.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
