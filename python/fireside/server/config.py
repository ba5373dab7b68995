"""The server's settings, checked once when the app is created."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fireside.server.origins import normalize_allowed_host, normalize_allowed_origin

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_PARALLEL = 4
DEFAULT_PROMPT_CACHE_SIZE = 4 << 30


@dataclass(frozen=True)
class ServerConfig:
    """How the server runs.

    Args:
        parallel: requests generated at the same time (slots of the shared context).
        ctx_size: context of each slot in tokens, prompt plus completion (``None``: what
            suits the model and this machine's memory, see :mod:`fireside.defaults`).
        api_key: when set, ``/v1/*`` and ``/metrics`` require ``Authorization: Bearer KEY``.
        model_id: the model name clients send and ``/v1/models`` lists (``None``: the
            name the model was given by, or its file name without ``.gguf``).
        max_queue: requests that may wait for a free slot; more get HTTP 503.
        max_body_bytes: the largest request body accepted (HTTP 413 beyond).
        max_tokens: the largest ``max_tokens`` a request may ask for (``None``: the slot
            context).
        max_embedding_inputs: the most texts one embeddings request may send.
        n_threads: CPU threads (``None``: ``"auto"``, up to the physical cores, fewer
            while other processes keep cores busy; see :mod:`fireside.generation.threads`).
        n_batch: the most tokens evaluated in one decode step.
        n_gpu_layers: layers to offload to a GPU (``None``: all when one is available).
        chat_template: a Jinja template or built-in template name overriding the model's.
        allowed_hosts: Host names the server answers to besides its loopback names and
            addresses, the address a connection arrived at and this machine's name
            (``".example.org"``: it and its subdomains; ``"*"``: any). Others get 403.
        allowed_origins: web pages (``"scheme://host[:port]"``, ``":*"`` for any port,
            ``"null"``, ``"*"``: any) that may call the server besides its own chat page;
            they get CORS headers, other pages 403. See :mod:`fireside.server.origins`.
        docs: LocalDocs collections (by name) that requests may search and answer from
            (``/v1/docs``, ``"docs"`` in chat completions); see
            :mod:`fireside.server.docs_api`.
        manage_models: whether requests may download and delete models (Ollama's
            ``/api/pull`` and ``/api/delete``; behind the API key when one is set).
            ``fireside serve`` turns it off when it listens beyond loopback without a key.
        max_models: models loaded at once; the least recently used idle one is unloaded
            to make room (see :mod:`fireside.server.model_manager`).
        memory_budget: bytes loaded models may take together (weights plus KV cache,
            estimated); ``None``: the memory free when the server starts.
        keep_alive: seconds an idle model stays loaded (0: unloaded after each reply;
            negative: until the server stops); a request's ``keep_alive`` overrides it.
        speculative: speculative decoding by prompt lookup in every slot (the output is
            the same either way; see :mod:`fireside.generation.speculative`).
        prompt_cache: a directory that keeps the KV cells of long prompt prefixes across
            restarts (``None``: off; see :mod:`fireside.generation.prompt_cache`).
        prompt_cache_size: the bound on that directory's size in bytes (default 4 GiB;
            least recently used files go first).
    """

    parallel: int = DEFAULT_PARALLEL
    ctx_size: int | None = None
    api_key: str | None = None
    model_id: str | None = None
    max_queue: int = 64
    max_body_bytes: int = 8 * 1024 * 1024
    max_tokens: int | None = None
    max_embedding_inputs: int = 2048
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int | None = None
    chat_template: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()
    manage_models: bool = True
    max_models: int = 3
    memory_budget: int | None = None
    keep_alive: float = 300.0
    speculative: bool = True
    prompt_cache: str | None = None
    prompt_cache_size: int = DEFAULT_PROMPT_CACHE_SIZE

    def __post_init__(self) -> None:
        def positive(name: str, value: object, low: int = 1, optional: bool = False) -> None:
            if optional and value is None:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                what = f"an integer >= {low}" + (" or None" if optional else "")
                raise ValueError(f"{name} must be {what}, got {value!r}")

        positive("parallel", self.parallel)
        positive("ctx_size", self.ctx_size, 64, optional=True)
        positive("max_queue", self.max_queue, 0)
        positive("max_body_bytes", self.max_body_bytes, 1024)
        positive("max_tokens", self.max_tokens, optional=True)
        positive("max_embedding_inputs", self.max_embedding_inputs)
        positive("n_threads", self.n_threads, optional=True)
        positive("n_batch", self.n_batch)
        positive("n_gpu_layers", self.n_gpu_layers, -1, optional=True)
        positive("max_models", self.max_models)
        positive("memory_budget", self.memory_budget, optional=True)
        if isinstance(self.keep_alive, bool) or not isinstance(self.keep_alive, (int, float)):
            raise TypeError(f"keep_alive must be a number of seconds, got {self.keep_alive!r}")
        positive("prompt_cache_size", self.prompt_cache_size)
        if self.prompt_cache is not None:
            if not isinstance(self.prompt_cache, (str, os.PathLike)) or not os.fspath(
                self.prompt_cache
            ):
                raise TypeError(f"prompt_cache must be a directory path, got {self.prompt_cache!r}")
            object.__setattr__(self, "prompt_cache", os.fspath(self.prompt_cache))
        if not isinstance(self.speculative, bool):
            raise TypeError(f"speculative must be True or False, got {self.speculative!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key must be a non-empty string or None")
        if self.model_id is not None and (not isinstance(self.model_id, str) or not self.model_id):
            raise ValueError("model_id must be a non-empty string or None")
        # frozen: store the canonical entries through object.__setattr__
        object.__setattr__(
            self,
            "allowed_hosts",
            _entries("allowed_hosts", self.allowed_hosts, normalize_allowed_host),
        )
        object.__setattr__(
            self,
            "allowed_origins",
            _entries("allowed_origins", self.allowed_origins, normalize_allowed_origin),
        )
        from fireside.docs.names import check_name

        object.__setattr__(self, "docs", _entries("docs", self.docs, check_name))


def _entries(name: str, value: Iterable[str], normalize: Callable[[str], str]) -> tuple[str, ...]:
    """``value``'s entries in canonical form, duplicates dropped, order kept."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of strings, got {value!r}")
    return tuple(dict.fromkeys(normalize(entry) for entry in value))
