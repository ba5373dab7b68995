"""fireside: run open large language models locally.

>>> import fireside
>>> model = fireside.Model("smollm2-135m-instruct")
>>> print(model.generate("The capital of France is", max_tokens=8, temperature=0).text)

Public names are imported on first use, so ``import fireside`` stays fast (the CLI's
``--help`` and short scripts pay only for what they touch).
"""

from __future__ import annotations

import importlib
import logging as _logging
import sys
import types
from typing import TYPE_CHECKING, Any

from fireside import errors

if sys.platform == "win32":  # portable wheels keep ggml's DLLs next to the extension module
    import os as _os

    _os.add_dll_directory(_os.path.dirname(_os.path.abspath(__file__)))

# llama.cpp's messages go to the "fireside.llama" logger; print nothing unless the
# application configures logging.
_logging.getLogger("fireside").addHandler(_logging.NullHandler())

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Model": "fireside.model",
    "ChatSession": "fireside.chat.session",
    "ChatTemplate": "fireside.chat.templates",
    "Embedder": "fireside.embeddings",
    "GenerationResult": "fireside.generation.results",
    "Usage": "fireside.generation.results",
    "Timings": "fireside.generation.results",
    "TokenLogprob": "fireside.generation.results",
    "SamplingParams": "fireside.generation.sampling",
    "GPT4All": "fireside.compat.gpt4all",
    "Embed4All": "fireside.compat.gpt4all",
    "Collection": "fireside.docs.collection",
    "list_collections": "fireside.docs.collection",
    "list_models": "fireside.hub",
    "pull": "fireside.hub",
    "remove": "fireside.hub",
    "show": "fireside.hub",
    "resolve_model": "fireside.hub",
    "devices": "fireside._core",
    "system_info": "fireside._core",
}

__all__ = [
    "ChatSession",
    "ChatTemplate",
    "Collection",
    "Embed4All",
    "Embedder",
    "GPT4All",
    "GenerationResult",
    "Model",
    "SamplingParams",
    "Timings",
    "TokenLogprob",
    "Usage",
    "__version__",
    "devices",
    "errors",
    "list_collections",
    "list_models",
    "offline",
    "pull",
    "remove",
    "resolve_model",
    "show",
    "system_info",
]

if TYPE_CHECKING:
    from fireside._core import devices, system_info
    from fireside.chat.session import ChatSession
    from fireside.chat.templates import ChatTemplate
    from fireside.compat.gpt4all import Embed4All, GPT4All
    from fireside.docs.collection import Collection, list_collections
    from fireside.embeddings import Embedder
    from fireside.generation.results import GenerationResult, Timings, TokenLogprob, Usage
    from fireside.generation.sampling import SamplingParams
    from fireside.hub import list_models, pull, remove, resolve_model, show
    from fireside.model import Model

    offline: bool


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fireside' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _FiresideModule(types.ModuleType):
    """Gives the package a settable ``fireside.offline`` flag (see :mod:`fireside.hub`)."""

    @property
    def offline(self) -> bool:
        """True when no model download may touch the network (also ``HF_HUB_OFFLINE=1``)."""
        from fireside.hub import is_offline

        return is_offline()

    @offline.setter
    def offline(self, value: bool) -> None:
        from fireside.hub import set_offline

        set_offline(value)


sys.modules[__name__].__class__ = _FiresideModule
