"""``show``: what fireside knows about a model, from the catalog and from the file itself."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import store
from .catalog import CatalogEntry
from .names import CatalogRef, parse_model_name
from .resolve import check_local, find_local

# llama.cpp's llama_ftype values (include/llama.h), as GGUF stores them in general.file_type
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}  # fmt: skip


@dataclass(frozen=True)
class GGUFInfo:
    """Facts read from a GGUF file's metadata (loaded vocabulary-only, no weights)."""

    architecture: str
    name: str | None
    parameters: int | None  # None when the file does not say
    size_label: str | None  # the file's own label, e.g. "135M"
    quantization: str | None
    context_length: int | None  # the trained context
    n_layer: int | None
    n_embd: int | None
    n_vocab: int
    vocab_type: str
    has_chat_template: bool
    license: str | None


@dataclass(frozen=True)
class ModelDetails:
    """The result of :func:`show`."""

    name: str
    entry: CatalogEntry | None
    downloaded: bool
    path: Path | None
    size_on_disk: int | None
    sha256: str | None  # recorded when fireside downloaded and verified the file
    source: str | None
    gguf: GGUFInfo | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "catalog": self.entry.to_dict() if self.entry else None,
            "downloaded": self.downloaded,
            "path": str(self.path) if self.path else None,
            "size_on_disk": self.size_on_disk,
            "sha256": self.sha256,
            "source": self.source,
            "gguf": asdict(self.gguf) if self.gguf else None,
        }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read a GGUF file's metadata with llama.cpp (vocabulary only; weights untouched)."""
    from .. import _core

    with _core.Model(os.fspath(path), vocab_only=True) as model:
        md = model.metadata
        arch = model.architecture
        file_type = _int(md.get("general.file_type"))
        n_params = model.n_params
        return GGUFInfo(
            architecture=arch,
            name=md.get("general.name"),
            parameters=n_params if n_params > 0 else None,
            size_label=md.get("general.size_label"),
            quantization=_FILE_TYPES.get(file_type) if file_type is not None else None,
            # a vocabulary-only load leaves the hyper-parameters unset: read the metadata
            context_length=model.n_ctx_train or _int(md.get(f"{arch}.context_length")),
            n_layer=model.n_layer or _int(md.get(f"{arch}.block_count")),
            n_embd=model.n_embd or _int(md.get(f"{arch}.embedding_length")),
            n_vocab=model.n_vocab,
            vocab_type=model.vocab_type,
            has_chat_template=model.chat_template() is not None,
            license=md.get("general.license"),
        )


def show(name: str | os.PathLike[str]) -> ModelDetails:
    """Catalog facts for ``name`` and, when the file is on disk, its GGUF metadata.

    Never downloads. Raises like :func:`fireside.hub.resolve_model` for a bad name and
    :class:`~fireside.errors.ModelLoadError` when the local file cannot be read by llama.cpp.
    """
    ref = parse_model_name(name)
    entry = ref.entry if isinstance(ref, CatalogRef) else None
    local = find_local(ref)
    path = check_local(local[0]) if local else None
    record = store.read_record(path) if path else None
    return ModelDetails(
        name=entry.name if entry else os.fspath(name),
        entry=entry,
        downloaded=path is not None,
        path=path,
        size_on_disk=sum(p.stat().st_size for p in local) if local else None,
        sha256=(record or {}).get("sha256"),
        source=(record or {}).get("source"),
        gguf=read_gguf(path) if path else None,
    )
