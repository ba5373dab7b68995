"""Cited answers: a chat reply grounded in excerpts from LocalDocs collections.

The one place where retrieval meets the prompt, used by chat sessions
(``model.chat_session(docs=...)``), the CLI (``--docs``) and the server (``"docs": [...]``):

1. **Retrieve.** The user's latest message is the query; each collection returns its best
   ``k`` chunks, and the hits of all collections are merged by score (best first) and cut
   to ``k``.
2. **Budget.** Excerpts are added best first while their tokens fit ``max_tokens`` (and a
   quarter of the context); the
   first one that does not fit is cut to the room left (when at least
   :data:`MIN_EXCERPT_TOKENS` remain), and the rest are dropped.
3. **Prompt.** For rendering only, the last user message is replaced by a copy that
   carries the numbered excerpts and then the question (see :func:`grounded_messages`).
   Every chat template has a user role, so this works with templates that reject or fold
   a system message. The stored conversation keeps the user's own words: the excerpts never
   enter it (so the next turn's prompt differs from the cached one from this message on, and
   only what came before it is reused from the KV cache).
4. **Cite.** The reply's ``references`` are the excerpts that reached the prompt, numbered
   as the prompt numbers them (``[1]``, ``[2]``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fireside.docs.collection import Collection
from fireside.docs.locations import Location

if TYPE_CHECKING:
    from fireside.docs.hits import Hit

DEFAULT_K = 4
"""Excerpts retrieved per message (over all collections together)."""
DEFAULT_MAX_TOKENS = 1024
"""Tokens the excerpts may take in the prompt (their headers included)."""
MAX_K = 50
"""The largest ``k`` accepted."""
CONTEXT_SHARE = 4
"""The excerpts take at most 1/CONTEXT_SHARE of the context, whatever the budget."""
MIN_EXCERPT_TOKENS = 16
"""An excerpt is cut to fit the budget only when at least this many tokens are left."""
ELLIPSIS = " …"
"""What ends an excerpt cut to fit the budget."""

INSTRUCTION = (
    "Answer the question using the numbered excerpts from the user's documents below "
    "when they are relevant, and cite them by number, like [1]. If they do not contain "
    "the answer, say so."
)
"""The sentence that opens the grounded copy of the user's message."""

DocsSpec = Collection | str | Sequence[Collection | str]
"""A collection, a collection name, or a list of them."""


@dataclass(frozen=True)
class Reference:
    """One excerpt a reply was grounded on: what the prompt showed as ``[number]``."""

    number: int
    """The excerpt's number in the prompt (1-based)."""
    collection: str
    """The collection it came from."""
    source: str
    """The document's path."""
    location: Location
    """Where in the document: page, heading, lines."""
    excerpt: str
    """The text put into the prompt (the chunk, or its start when cut to the budget)."""
    title: str | None
    """The document's title, where the format has one."""
    score: float
    """The retrieval score (see :class:`fireside.docs.Hit`)."""

    @property
    def file_name(self) -> str:
        """The document's file name (the last part of :attr:`source`)."""
        return os.path.basename(self.source) or self.source

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``number``, ``collection``, ``source``, ``file``, ``title``,
        ``location`` (``page``, ``heading``, ``lines``), ``excerpt``, ``score``."""
        return {
            "number": self.number,
            "collection": self.collection,
            "source": self.source,
            "file": self.file_name,
            "title": self.title,
            "location": self.location.to_dict(),
            "excerpt": self.excerpt,
            "score": self.score,
        }

    def header(self) -> str:
        """``[n] file name (location)`` as the prompt and the CLI show it."""
        where = str(self.location)
        return f"[{self.number}] {self.file_name}" + (f" ({where})" if where else "")


def check_k(k: object) -> int:
    """``k`` if it is an integer from 1 to :data:`MAX_K`, else ``ValueError``."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ValueError(f"docs k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


def check_max_tokens(max_tokens: object) -> int:
    """``max_tokens`` if it is an integer >= :data:`MIN_EXCERPT_TOKENS`, else ``ValueError``."""
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or max_tokens < MIN_EXCERPT_TOKENS
    ):
        raise ValueError(
            f"docs max_tokens must be an integer >= {MIN_EXCERPT_TOKENS}, got {max_tokens!r}"
        )
    return max_tokens


def merge_hits(per_collection: Sequence[tuple[str, list[Hit]]], k: int) -> list[tuple[str, Hit]]:
    """The ``k`` best ``(collection, hit)`` pairs of several collections' results, by score
    (ties keep the collections' order, then each one's own ranking)."""
    pairs = [
        (rank, order, name, hit)
        for order, (name, hits) in enumerate(per_collection)
        for rank, hit in enumerate(hits)
    ]
    pairs.sort(key=lambda item: (-item[3].score, item[1], item[0]))
    return [(name, hit) for _, _, name, hit in pairs[:k]]


def _cut(text: str, room: int, count_tokens: Callable[[str], int]) -> str:
    """The longest start of ``text`` (ending at a word break where possible) that takes at
    most ``room`` tokens."""
    if count_tokens(text) <= room:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits: token counts grow with the prefix
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid] + ELLIPSIS) <= room:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    if space > len(cut) // 2:
        cut = cut[:space]
    cut = cut.rstrip()
    return cut + ELLIPSIS if cut else ""


def format_excerpt(reference: Reference) -> str:
    """One excerpt as the prompt shows it: its header line, then its text."""
    return f"{reference.header()}\n{reference.excerpt.strip()}"


def budget_references(
    ranked: Sequence[tuple[str, Hit]], max_tokens: int, count_tokens: Callable[[str], int]
) -> list[Reference]:
    """Number the ranked hits and keep, best first, those whose formatted excerpts fit
    ``max_tokens`` (see the module's description)."""
    references: list[Reference] = []
    used = 0
    for collection, hit in ranked:
        ref = Reference(
            number=len(references) + 1,
            collection=collection,
            source=hit.source,
            location=hit.location,
            excerpt=hit.text.strip(),
            title=hit.title,
            score=hit.score,
        )
        cost = count_tokens(format_excerpt(ref) + "\n\n")
        if used + cost <= max_tokens:
            references.append(ref)
            used += cost
            continue
        head = count_tokens(format_excerpt(_with_excerpt(ref, "")) + "\n\n")
        room = max_tokens - used - head
        if room >= MIN_EXCERPT_TOKENS:
            excerpt = _cut(ref.excerpt, room, count_tokens)
            if excerpt:
                references.append(_with_excerpt(ref, excerpt))
        break
    return references


def _with_excerpt(ref: Reference, excerpt: str) -> Reference:
    return Reference(
        ref.number, ref.collection, ref.source, ref.location, excerpt, ref.title, ref.score
    )


def grounded_text(question: str, references: Sequence[Reference]) -> str:
    """The text that stands in for the user's message in the rendered prompt::

        Answer the question using the numbered excerpts ... [1]. ...

        [1] rootless-builds.txt (lines 14-26)
        <excerpt>

        [2] ...

        Question: <the user's message>

    ``question`` itself when there are no references.
    """
    if not references:
        return question
    excerpts = "\n\n".join(format_excerpt(ref) for ref in references)
    return f"{INSTRUCTION}\n\n{excerpts}\n\nQuestion: {question}"


def last_user_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    """The index of the last user message, or ``None``."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None


def grounded_messages(
    messages: Sequence[Mapping[str, Any]], references: Sequence[Reference]
) -> list[dict[str, Any]]:
    """A copy of ``messages`` for rendering: the last user message's content replaced by
    :func:`grounded_text` (the other messages, and ``messages`` itself, unchanged)."""
    copied = [dict(m) for m in messages]
    index = last_user_index(copied)
    if index is not None and references:
        copied[index]["content"] = grounded_text(str(copied[index]["content"]), references)
    return copied


def query_of(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The retrieval query of a conversation: its last user message's text (``None`` when
    there is none or it is blank)."""
    index = last_user_index(messages)
    if index is None:
        return None
    content = messages[index].get("content")
    if isinstance(content, list):  # OpenAI text parts
        content = "".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping)
        )
    if not isinstance(content, str) or not content.strip():
        return None
    return content


class Grounding:
    """Collections to ground replies in, and how many excerpts to use.

    Args:
        docs: a :class:`fireside.Collection`, a collection name, or a list of them. Names
            are opened here (unknown ones raise
            :class:`~fireside.docs.errors.CollectionNotFoundError`) and closed by
            :meth:`close`; collections passed in stay the caller's.
        k: excerpts per message, over all collections (1 to :data:`MAX_K`).
        max_tokens: the token budget of the excerpts in the prompt.
        mode: the search mode: ``"hybrid"``, ``"vector"`` or ``"keyword"``.
    """

    def __init__(
        self,
        docs: DocsSpec,
        *,
        k: int = DEFAULT_K,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        mode: str = "hybrid",
    ) -> None:
        from fireside.docs.retrieval import MODES

        self.k = check_k(k)
        self.max_tokens = check_max_tokens(max_tokens)
        if mode not in MODES:
            raise ValueError(f"docs mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        items: Sequence[Collection | str]
        if isinstance(docs, (Collection, str)):
            items = [docs]
        elif isinstance(docs, Sequence):
            items = list(docs)
        else:
            raise TypeError(
                "docs must be a fireside.Collection, a collection name or a list of them, "
                f"got {type(docs).__name__}"
            )
        if not items:
            raise ValueError("docs is empty; give at least one collection")
        self.collections: list[Collection] = []
        self._owned: list[Collection] = []
        try:
            for item in items:
                if isinstance(item, Collection):
                    self.collections.append(item)
                elif isinstance(item, str):
                    opened = Collection(item, create=False)
                    self._owned.append(opened)
                    self.collections.append(opened)
                else:
                    raise TypeError(
                        "docs must hold fireside.Collection objects or collection names, "
                        f"got {type(item).__name__}"
                    )
        except BaseException:
            self.close()
            raise
        names = [c.name for c in self.collections]
        if len(set(names)) != len(names):
            raise ValueError(f"docs names a collection twice: {names}")

    @property
    def names(self) -> list[str]:
        """The collections' names."""
        return [c.name for c in self.collections]

    def budget(self, n_ctx: int | None = None) -> int:
        """The excerpts' token budget in a context of ``n_ctx`` tokens: ``max_tokens``, at
        most ``n_ctx // CONTEXT_SHARE`` (but never below :data:`MIN_EXCERPT_TOKENS`)."""
        if n_ctx is None:
            return self.max_tokens
        return min(self.max_tokens, max(n_ctx // CONTEXT_SHARE, MIN_EXCERPT_TOKENS))

    def retrieve(
        self, query: str, count_tokens: Callable[[str], int], *, n_ctx: int | None = None
    ) -> list[Reference]:
        """The references for ``query``: searched, merged, numbered and cut to
        :meth:`budget` (``count_tokens(text)`` counts tokens with the chat model's
        vocabulary; ``n_ctx`` is the context the prompt must fit)."""
        if not query.strip():
            return []
        per_collection = [
            (col.name, col.search(query, k=self.k, mode=self.mode)) for col in self.collections
        ]
        ranked = merge_hits(per_collection, self.k)
        return budget_references(ranked, self.budget(n_ctx), count_tokens)

    def close(self) -> None:
        """Close the collections this object opened by name."""
        for col in self._owned:
            col.close()
        self._owned = []

    def __repr__(self) -> str:
        return f"Grounding({self.names!r}, k={self.k}, max_tokens={self.max_tokens})"
