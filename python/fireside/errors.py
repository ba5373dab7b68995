"""The exceptions fireside raises.

They inherit the built-in exception a caller would naturally catch (``ValueError`` for a
bad argument, ``RuntimeError`` for a failed operation, ``LookupError`` for an unknown
name), so code that predates fireside keeps working. The native module raises these same
classes; attributes carry the facts (counts, hashes) so callers never parse messages.

This module must not import anything from fireside: the native module imports it while
the package is still initialising.
"""

from __future__ import annotations


class FiresideError(Exception):
    """Base class of every error fireside raises on purpose."""


class ClosedError(FiresideError, ValueError):
    """A model, context or sampler was used after ``close()``."""


class ModelLoadError(FiresideError, RuntimeError):
    """A file could not be loaded as a model; ``reason`` is llama.cpp's explanation."""

    def __init__(self, message: str, *, path: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason


class Cancelled(FiresideError):
    """An operation stopped because the caller asked it to."""


class LoadCancelled(Cancelled):
    """A model load was cancelled by its progress callback."""


class GenerationCancelled(Cancelled):
    """A decode or generation was cancelled (``cancel()``)."""


class ContextFullError(FiresideError, RuntimeError):
    """The KV cache has no room for the batch being decoded."""

    def __init__(self, message: str, *, n_ctx: int | None = None, n_tokens: int | None = None):
        super().__init__(message)
        self.n_ctx = n_ctx
        self.n_tokens = n_tokens


class ContextLengthError(FiresideError, ValueError):
    """A prompt (or conversation) does not fit the context window."""

    def __init__(self, message: str, *, n_prompt_tokens: int, n_ctx: int):
        super().__init__(message)
        self.n_prompt_tokens = n_prompt_tokens
        self.n_ctx = n_ctx


class RemoteDeviceError(FiresideError, ConnectionError):
    """A remote (RPC) device could not be reached, or its connection was lost.

    After a loss mid-generation the model's layers on that worker are gone: close the model
    and load it again once the worker is back.
    """


class DecodeError(FiresideError, RuntimeError):
    """llama.cpp failed to evaluate a batch for a reason other than a full cache."""

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


class GrammarError(FiresideError, ValueError):
    """A GBNF grammar (or a JSON schema converted to one) is invalid."""


class TemplateError(FiresideError, ValueError):
    """A chat template failed to render (syntax error, sandbox violation, raise_exception)."""


class ToolError(FiresideError, ValueError):
    """A tool definition, ``tool_choice`` or tool-call message is invalid, or a template
    cannot render tools."""


class ModelNotFoundError(FiresideError, LookupError):
    """A model name is neither a local file nor known to the catalog."""


class DownloadError(FiresideError, RuntimeError):
    """A model download failed or produced a file that does not verify."""

    def __init__(
        self, message: str, *, expected_sha256: str | None = None, actual_sha256: str | None = None
    ):
        super().__init__(message)
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256


class OfflineError(DownloadError):
    """A model is not downloaded and offline mode forbids fetching it."""


class ConversionError(FiresideError, ValueError):
    """A model directory cannot be converted to GGUF (unsupported or malformed)."""


class VocabularyMismatchError(FiresideError, ValueError):
    """A draft model's vocabulary differs from its target model's, so its drafts cannot be
    verified token for token."""


class QueueFullError(FiresideError, RuntimeError):
    """Every slot is busy and the waiting queue is full; retry after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineStoppedError(FiresideError, RuntimeError):
    """The engine is not running (shut down, or its scheduler failed)."""
