"""A ``gpt4all``-compatible facade: code written for the ``gpt4all`` package runs on
fireside by changing only its import (``import fireside as gpt4all``).

:class:`GPT4All` and :class:`Embed4All` keep GPT4All's signatures and defaults and are
thin adapters over :class:`fireside.Model`, :class:`fireside.ChatSession` and
:class:`fireside.Embedder`. Differences, all deliberate:

* Models are GGUF files found through fireside's catalog (GPT4All's file names are
  catalog aliases) and kept in fireside's cache; a file in ``model_path`` (or in
  GPT4All's own ``~/.cache/gpt4all``) is used when it exists. GGML ``.bin`` names raise
  an error that names the closest catalog model.
* Chat sessions render the model's own chat template (GGUF metadata); a
  ``prompt_template`` with ``{0}`` still works as in GPT4All.
* ``n_batch`` of :meth:`GPT4All.generate` is accepted for compatibility and has no
  effect: prompts are evaluated in the model's batch size (512 tokens).
* :attr:`GPT4All.current_chat_session` returns a copy; assign a list to change it. A
  streamed reply joins it when the stream ends (GPT4All grew it token by token).
* A GGML name raises :class:`~fireside.errors.ModelNotFoundError` (a ``LookupError``).
  A file on disk that is not GGUF raises :class:`~fireside.errors.ModelLoadError`, with the
  message :class:`fireside.Model` gives for it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireside.chat.messages import validate_messages
from fireside.chat.reply_stream import ChatStream
from fireside.chat.session import ChatSession
from fireside.chat.templates import ChatTemplate
from fireside.errors import ModelNotFoundError
from fireside.generation.sampling import SamplingOptions
from fireside.generation.stream import GenerationStream
from fireside.model import Model
from fireside.model_path import resolve_model_path
from fireside.placement import local_gpus

if TYPE_CHECKING:
    from typing_extensions import Self

ConfigType = dict[str, Any]
MessageType = dict[str, str]
ResponseCallbackType = Callable[[int, str], bool]

DEFAULT_MODEL_DIRECTORY = Path.home() / ".cache" / "gpt4all"
"""Where GPT4All keeps its models; files found there are used as they are."""

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2.gguf2.f16.gguf"
"""The model :class:`Embed4All` loads by default (as in GPT4All)."""

_GGML_NAME = re.compile(r"(\.bin$|ggml)", re.IGNORECASE)
_GPU_WORDS = {"gpu", "cuda", "nvidia", "amd", "intel", "metal", "kompute", "vulkan"}


def empty_response_callback(token_id: int, response: str) -> bool:
    """The default callback: never stops the generation."""
    return True


def _ggml_error(name: str) -> ModelNotFoundError:
    try:
        from fireside.hub.names import ggml_error
    except ImportError:  # the catalog is not available: say it without a suggestion
        return ModelNotFoundError(f"{name}: GGML files are no longer supported; GGUF is required")
    return ggml_error(name)


def _local_file(model_name: str, model_path: str | os.PathLike[str] | None) -> Path | None:
    folders = [Path(model_path)] if model_path is not None else [DEFAULT_MODEL_DIRECTORY]
    names = [model_name] if model_name.endswith((".gguf", ".bin")) else [model_name + ".gguf"]
    names.append(model_name)
    for folder in folders:
        for name in names:
            candidate = folder.expanduser() / name
            if candidate.is_file():
                return candidate
    return None


def _catalog_info(name: str) -> dict[str, Any]:
    try:
        from fireside.hub.catalog import get_entry
    except ImportError:
        return {}
    entry = get_entry(name)
    return _gpt4all_config(entry) if entry is not None else {}


def _gpt4all_config(entry: Any) -> dict[str, Any]:
    config: dict[str, Any] = dict(entry.to_dict())
    config.update(
        filename=entry.file,
        filesize=str(entry.size),
        ramrequired=str(entry.ram_gb),
        quant=entry.quantization,
        type=entry.kind,
        systemPrompt="",
        promptTemplate=None,
    )
    return config


def _device_options(device: str | None, ngl: int) -> dict[str, Any]:
    if device is None or device.lower() == "cpu":
        return {"device": "cpu", "n_gpu_layers": 0}
    if device.lower() in _GPU_WORDS:
        return {"device": "gpu", "n_gpu_layers": ngl}
    return {"device": device, "n_gpu_layers": ngl}


def _legacy_template(prompt_template: str) -> ChatTemplate:
    """A chat template doing what GPT4All did with a ``{0}`` prompt template: the system
    prompt, then each user message in the template followed by the assistant's reply."""
    if re.search(r"%1(?![0-9])", prompt_template):
        raise ValueError(
            "Prompt template containing a literal '%1' is not supported. For a prompt "
            "placeholder, please use '{0}' instead."
        )
    mark = "\x00fireside-prompt\x00"
    try:
        filled = prompt_template.format(mark)
    except (IndexError, KeyError, ValueError) as e:
        raise ValueError(f"prompt_template must contain '{{0}}' and no other field: {e}") from e
    if mark not in filled:
        raise ValueError("prompt_template must contain '{0}' where the user's message goes")
    before, after = filled.split(mark, 1)

    def literal(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    source = (
        "{% for m in messages %}"
        "{% if m.role == 'system' %}{{ m.content }}{% if m.content %}{{ '\\n' }}{% endif %}"
        "{% elif m.role == 'user' %}{{ "
        + literal(before)
        + " }}{{ m.content }}{{ "
        + literal(after)
        + " }}"
        "{% else %}{{ m.content }}{{ '\\n' }}{% endif %}"
        "{% endfor %}"
    )
    return ChatTemplate(source, name="gpt4all-prompt-template")


class GPT4All:
    """GPT4All's model class, on fireside (same signature and defaults).

    Args:
        model_name: a catalog name or a GPT4All file name (``.gguf`` optional).
        model_path: a folder to look for the file in (default: GPT4All's
            ``~/.cache/gpt4all``, then fireside's cache and catalog).
        model_type: descriptive only, as in GPT4All.
        allow_download: download the model when it is not on disk.
        n_threads: CPU threads (default ``None``: ``"auto"``, as for :class:`fireside.Model`).
        device: ``"cpu"`` (default), ``"gpu"`` (or a vendor name) or a device name.
        n_ctx: context size in tokens.
        ngl: layers to offload when a GPU device is chosen.
        verbose: show loading details and download progress.
    """

    def __init__(
        self,
        model_name: str,
        model_path: str | os.PathLike[str] | None = None,
        model_type: str | None = None,
        allow_download: bool = True,
        n_threads: int | None = None,
        device: str | None = None,
        n_ctx: int = 2048,
        ngl: int = 100,
        verbose: bool = False,
    ) -> None:
        self.model_type = model_type
        self.config: ConfigType = self.retrieve_model(
            model_name, model_path=model_path, allow_download=allow_download, verbose=verbose
        )
        self.model = Model(
            self.config["path"],
            n_ctx=n_ctx,
            n_threads=n_threads,
            verbose=verbose,
            progress=verbose,
            **_device_options(device, ngl),
        )
        self._session: ChatSession | None = None
        self._system_prompt = ""

    # -- model files -----------------------------------------------------------------

    @staticmethod
    def list_models() -> list[ConfigType]:
        """The models fireside's catalog offers, as GPT4All-style dicts (``filename``,
        ``filesize``, ``ramrequired``, ``description``, ...)."""
        from fireside.hub.catalog import catalog_entries

        return [_gpt4all_config(entry) for entry in catalog_entries()]

    @staticmethod
    def retrieve_model(
        model_name: str,
        model_path: str | os.PathLike[str] | None = None,
        allow_download: bool = True,
        verbose: bool = False,
    ) -> ConfigType:
        """Find the model's file (downloading it if allowed); its config dict has ``path``."""
        if not isinstance(model_name, str) or not model_name:
            raise TypeError(f"model_name must be a non-empty str, got {model_name!r}")
        local = _local_file(model_name, model_path)
        if local is not None:
            local = resolve_model_path(local)  # refused as Model refuses a file that is not GGUF
        elif _GGML_NAME.search(model_name):
            raise _ggml_error(model_name)
        config = _catalog_info(model_name)
        if local is None:
            from fireside.hub import resolve_model

            local = Path(resolve_model(model_name, allow_download=allow_download, progress=verbose))
        config.setdefault("filename", local.name)
        config.setdefault("systemPrompt", "")
        config.setdefault("promptTemplate", None)
        config["path"] = str(local)
        return config

    @staticmethod
    def download_model(
        model_filename: str,
        model_path: str | os.PathLike[str] | None = None,
        verbose: bool = True,
        url: str | None = None,
        expected_size: int | None = None,
        expected_md5: str | None = None,
    ) -> str | os.PathLike[str]:
        """Download a catalog model (or ``url``) and return its path.

        fireside verifies downloads by sha256 and keeps them in its own cache; the path
        returned is there. ``model_path`` and ``expected_md5`` are not used;
        ``expected_size`` is checked.
        """
        from fireside.hub import resolve_model

        path = Path(resolve_model(url or model_filename, allow_download=True, progress=verbose))
        if expected_size is not None and path.stat().st_size != expected_size:
            raise ValueError(f"{path} has {path.stat().st_size} bytes, expected {expected_size}")
        return path

    @staticmethod
    def list_gpus() -> list[str]:
        """Names of the GPUs ``device="gpu"`` loads onto (discrete ones, else integrated;
        empty when none)."""
        return local_gpus()

    # -- generation ------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 200,
        temp: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.4,
        min_p: float = 0.0,
        repeat_penalty: float = 1.18,
        repeat_last_n: int = 64,
        n_batch: int = 8,
        n_predict: int | None = None,
        streaming: bool = False,
        callback: ResponseCallbackType = empty_response_callback,
    ) -> Any:
        """Complete ``prompt`` (inside :meth:`chat_session`: answer it as the user's next
        message). Returns the text, or with ``streaming`` an iterator of text pieces.
        ``callback(token_id, piece)`` is called as text arrives; returning ``False`` stops.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if not isinstance(n_batch, int) or n_batch < 1:
            raise ValueError(f"n_batch must be a positive integer, got {n_batch!r}")
        sampling: SamplingOptions = {  # GPT4All's names and defaults, in fireside's terms
            "temperature": temp,
            "top_k": top_k,
            "top_p": top_p,
            "min_p": min_p,
            "repeat_penalty": repeat_penalty,
            "repeat_last_n": repeat_last_n,
        }
        limit = n_predict if n_predict is not None else max_tokens
        hook = None if callback is empty_response_callback else callback
        gen: GenerationStream | ChatStream
        if self._session is not None:
            gen = self._session.send(
                prompt, stream=True, max_tokens=limit, callback=hook, **sampling
            )
        else:
            params = self.model.sampling_params(**sampling)
            gen = self.model.start(prompt, params, max_tokens=limit, callback=hook)
        if streaming:
            return gen
        return gen.drain().text

    @contextmanager
    def chat_session(
        self, system_prompt: str | None = None, prompt_template: str | None = None
    ) -> Iterator[GPT4All]:
        """Hold a conversation: inside the ``with`` block each :meth:`generate` is the
        next user message and sees the previous turns (:attr:`current_chat_session`)."""
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise TypeError(f"system_prompt must be a str, got {type(system_prompt).__name__}")
        template = _legacy_template(prompt_template) if prompt_template else None
        self._system_prompt = system_prompt or ""
        self._session = ChatSession(self.model, system_prompt or None, chat_template=template)
        try:
            yield self
        finally:
            self._session = None
            self._system_prompt = ""

    @property
    def current_chat_session(self) -> list[MessageType]:
        """The conversation of the open chat session, system message first (``[]``
        outside a session)."""
        if self._session is None:
            return []
        turns = [m for m in self._session.history if m["role"] != "system"]
        return [{"role": "system", "content": self._system_prompt}, *turns]

    @current_chat_session.setter
    def current_chat_session(self, history: list[MessageType]) -> None:
        if self._session is None:
            raise ValueError(
                "current_chat_session may only be set when there is an active chat session"
            )
        messages = validate_messages(history, allow_empty=True)
        system = ""
        if messages and messages[0]["role"] == "system":
            system = messages.pop(0)["content"]
        self._system_prompt = system
        if system:
            messages.insert(0, {"role": "system", "content": system})
        self._session.history = messages

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Free the model."""
        self.model.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Embed4All:
    """GPT4All's embedding class, on fireside.

    Args:
        model_name: an embedding model (default: all-MiniLM-L6-v2, as in GPT4All).
        n_threads: CPU threads (default: the physical cores).
        device: ``"cpu"`` (default), ``"gpu"`` or a device name.
        kwargs: :class:`GPT4All`'s other options (``model_path``, ``allow_download``,
            ``n_ctx``, ``ngl``, ``verbose``).
    """

    MIN_DIMENSIONALITY = 64

    def __init__(
        self,
        model_name: str | None = None,
        *,
        n_threads: int | None = None,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        name = model_name or DEFAULT_EMBEDDING_MODEL
        known = {"model_path", "allow_download", "n_ctx", "ngl", "verbose", "model_type"}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"Embed4All got unexpected options: {', '.join(sorted(unknown))}")
        config = GPT4All.retrieve_model(
            name,
            model_path=kwargs.get("model_path"),
            allow_download=kwargs.get("allow_download", True),
            verbose=kwargs.get("verbose", False),
        )
        self.config = config
        self.model = Model(
            config["path"],
            n_ctx=kwargs.get("n_ctx"),
            n_threads=n_threads,
            embedding=True,
            verbose=kwargs.get("verbose", False),
            **_device_options(device, kwargs.get("ngl", 100)),
        )
        self._nomic = "nomic-embed" in Path(config["path"]).name.lower()

    def embed(
        self,
        text: str | list[str],
        *,
        prefix: str | None = None,
        dimensionality: int | None = None,
        long_text_mode: str = "mean",
        return_dict: bool = False,
        atlas: bool = False,
        cancel_cb: Callable[..., bool] | None = None,
    ) -> Any:
        """Embed one text (a list of floats) or several (a list of lists), normalized.

        ``prefix``: the task prefix without its colon (Nomic models default to
        ``search_document``). ``dimensionality``: keep the first N dimensions (Matryoshka
        models), renormalized. ``long_text_mode``: ``"mean"`` averages the pieces of a
        long text, ``"truncate"`` keeps its start. ``return_dict`` gives
        ``{"embeddings": ..., "n_prompt_tokens": ...}``.
        """
        if atlas:
            raise ValueError("atlas=True (Nomic's hosted embeddings) is not supported")
        if cancel_cb is not None:
            raise ValueError("cancel_cb is not supported: an embedding call is not cancelled")
        if long_text_mode not in ("mean", "truncate"):
            raise ValueError(f"long_text_mode must be 'mean' or 'truncate', got {long_text_mode!r}")
        single = isinstance(text, str)
        texts: list[str] = [text] if single else text  # type: ignore[list-item,assignment]
        if not isinstance(texts, list):
            raise TypeError(f"text must be a str or a list of str, got {type(text).__name__}")
        if prefix is None and self._nomic:
            prefix = "search_document"
        if prefix:
            texts = [f"{prefix}: {t}" if isinstance(t, str) else t for t in texts]
        long_text = "average" if long_text_mode == "mean" else "truncate"
        vectors = self.model.embed(texts, long_text=long_text)  # type: ignore[arg-type]
        if dimensionality is not None:
            n_embd = vectors.shape[1]
            if not isinstance(dimensionality, int) or not (
                self.MIN_DIMENSIONALITY <= dimensionality <= n_embd
            ):
                raise ValueError(
                    f"dimensionality must be in [{self.MIN_DIMENSIONALITY}, {n_embd}], "
                    f"got {dimensionality!r}"
                )
            vectors = vectors[:, :dimensionality]
            vectors = vectors / (vectors**2).sum(axis=1, keepdims=True) ** 0.5
        rows: list[list[float]] = vectors.tolist()
        embeddings: Any = rows[0] if single else rows
        if not return_dict:
            return embeddings
        n_tokens = sum(self.model.count_tokens(t, add_special=True) for t in texts)
        return {"embeddings": embeddings, "n_prompt_tokens": n_tokens}

    def close(self) -> None:
        """Free the model."""
        self.model.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
