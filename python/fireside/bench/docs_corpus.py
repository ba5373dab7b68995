"""Real text for the LocalDocs benchmarks: documents this machine already has.

Three kinds, interleaved so that even a small corpus mixes them: English manual pages
(``/usr/share/man/man*``, roff turned into Markdown with a heading per ``.SH``/``.SS``),
the READMEs, manuals and changelogs Debian packages install under ``/usr/share/doc``
(licence files left out: thousands of copies of a few licences), and the sources of
Python's own standard library (code and docstrings). Nothing here was written for the
benchmark, and no one document is repeated, so keyword statistics (how many chunks a
word is in) look like a real collection's.

The order is fixed by a seed: the same machine gives the same corpus.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fireside.docs.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, chunk_sections
from fireside.docs.readers import Unreadable, format_of, parse

MAX_DOCUMENT_BYTES = 256_000
"""Longer documents are cut (at a line end): no one changelog dominates the corpus."""
MAN_ROOT = Path("/usr/share/man")
DOC_ROOT = Path("/usr/share/doc")
MAX_PAGES_PER_FAMILY = 50
"""Manual pages whose names share a first word (``gcloud_*``, ``git-*``) are mostly one
template filled in: at most this many of each family are taken."""
_SKIP_DOC_NAMES = ("copyright", "license", "copying")
_PY_SKIP_DIRS = frozenset(["site-packages", "dist-packages", "test", "tests", "__pycache__"])


@dataclass(frozen=True)
class Document:
    """One real document: a relative file name (its extension picks the reader) and bytes."""

    name: str
    data: bytes

    @property
    def format(self) -> str:
        fmt = format_of(self.name)
        if fmt is None:  # every name made here has a supported extension
            raise ValueError(f"no reader for {self.name}")
        return fmt


# -- roff to Markdown --------------------------------------------------------------------

_FONT = re.compile(r"\\f(?:\(..|\[[^\]]*\]|.)")
_NAMED = re.compile(r"\\(?:\(..|\[[^\]]*\]|\*(?:\(..|\[[^\]]*\]|.))")
_OTHER = re.compile(r"\\[&/,|^%:c]")
_SIZE = re.compile(r"\\s[+-]?\d")
_MACRO_WITH_TEXT = frozenset(["B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "SB", "IP"])


def _unescape(text: str) -> str:
    text = text.replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
    text = _FONT.sub("", text)
    text = _SIZE.sub("", text)
    text = _NAMED.sub(" ", text)
    return _OTHER.sub("", text)


def man_to_markdown(roff: str) -> str:
    """A manual page's roff source as Markdown: ``.SH``/``.SS`` become headings, text
    macros keep their words, other requests and comments go."""
    out: list[str] = []
    title = None
    for line in roff.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith((".", "'")):
            name, _, rest = line[1:].strip().partition(" ")
            rest = _unescape(rest.strip()).strip('"')
            if name == "TH" and title is None:
                title = rest.split('"')[0].split(" ")[0].lower()
                out.append(f"# {title}")
            elif name == "SH":
                out += ["", f"## {rest.title()}", ""]
            elif name == "SS":
                out += ["", f"### {rest}", ""]
            elif name in ("PP", "LP", "P", "TP", "sp", "br"):
                out.append("")
            elif name in _MACRO_WITH_TEXT and rest:
                out.append(rest.replace('" "', " ").replace('"', ""))
            continue
        out.append(_unescape(line))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


# -- the three sources -------------------------------------------------------------------


def _cut(text: str) -> str:
    if len(text) <= MAX_DOCUMENT_BYTES:
        return text
    end = text.rfind("\n", 0, MAX_DOCUMENT_BYTES)
    return text[: end if end > 0 else MAX_DOCUMENT_BYTES]


def _read_text(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if b"\x00" in raw[:4096]:
        return None
    return _cut(raw.decode("utf-8", errors="replace"))


def _files(root: Path, keep: object) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _PY_SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if keep(path) and path.is_file() and not path.is_symlink():  # type: ignore[operator]
                found.append(path)
    return found


def _man_pages(rng: random.Random) -> list[Path]:
    sections = sorted(MAN_ROOT.glob("man[1-8]")) if MAN_ROOT.is_dir() else []
    families: dict[str, list[Path]] = {}
    for section in sections:
        for path in _files(section, lambda p: p.name.endswith(".gz")):
            families.setdefault(re.split(r"[-_.:]", path.name, maxsplit=1)[0], []).append(path)
    kept = []
    for members in families.values():
        kept += rng.sample(members, min(len(members), MAX_PAGES_PER_FAMILY))
    return sorted(kept)


def _debian_docs() -> list[Path]:
    def keep(path: Path) -> bool:
        lower = path.name.lower()
        if any(lower.startswith(s) for s in _SKIP_DOC_NAMES):
            return False
        base = lower.removesuffix(".gz")
        return format_of(base) in ("text", "markdown", "rst", "html") or (
            lower.endswith(".gz") and format_of(base) is None
        )

    return _files(DOC_ROOT, keep) if DOC_ROOT.is_dir() else []


def _python_sources() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return _files(stdlib, lambda p: p.suffix == ".py") if stdlib.is_dir() else []


def _load(kind: str, path: Path) -> Document | None:
    text = _read_text(path)
    if text is None or len(text.strip()) < 200:
        return None
    if kind == "man":
        if text.lstrip().startswith(".so "):  # a link to another page
            return None
        stem = path.name.removesuffix(".gz")
        return Document(f"man/{path.parent.name}/{stem}.md", man_to_markdown(text).encode())
    if kind == "py":
        rel = path.relative_to(Path(sysconfig.get_paths()["stdlib"]))
        return Document(f"python/{rel}", text.encode())
    rel = path.relative_to(DOC_ROOT)
    name = str(rel).removesuffix(".gz")
    if format_of(os.path.basename(name)) is None:
        name += ".txt"  # changelog.Debian, NEWS, README: plain text
    return Document(f"doc/{name}", text.encode())


def documents(*, seed: int = 0) -> Iterator[Document]:
    """Real documents, the three kinds taken in turn, each kind in a seeded shuffled order."""
    rng = random.Random(seed)
    lists = []
    sources = (("man", _man_pages(rng)), ("doc", _debian_docs()), ("py", _python_sources()))
    for kind, found in sources:
        rng.shuffle(found)
        lists.append((kind, iter(found)))
    while lists:
        for entry in list(lists):
            kind, paths = entry
            for path in paths:
                doc = _load(kind, path)
                if doc is not None:
                    yield doc
                    break
            else:
                lists.remove(entry)


def chunk_texts(doc: Document) -> list[str]:
    """The chunk texts fireside's own reader and chunker make of ``doc`` (default sizes)."""
    try:
        parsed = parse(doc.format, doc.data)
    except Unreadable:
        return []
    chunks = chunk_sections(parsed.sections, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP)
    return [c.text for c in chunks]


def corpus_chunks(n: int, *, seed: int = 0) -> list[str]:
    """The first ``n`` chunk texts of :func:`documents` (a ``ValueError`` if the machine
    has fewer)."""
    out: list[str] = []
    for doc in documents(seed=seed):
        out.extend(chunk_texts(doc))
        if len(out) >= n:
            return out[:n]
    raise ValueError(f"this machine's documents give only {len(out)} chunks, not {n}")
