"""Where models live and whether the network may be used.

Every setting is read when it is needed, never cached at import time, so changing an
environment variable (or calling :func:`set_offline`) takes effect at the next call.

Environment variables:

``FIRESIDE_CACHE_DIR``
    fireside's cache (default ``$XDG_CACHE_HOME/fireside``, else ``~/.cache/fireside``).
    Downloaded models are kept in its ``models/`` folder.
``FIRESIDE_MODELS_DIR``
    Overrides the models folder alone.
``FIRESIDE_HUB_TIMEOUT``
    Seconds to wait for the Hub to answer a metadata request (default: huggingface_hub's
    ``HF_HUB_ETAG_TIMEOUT``, 10). A Hub that cannot be reached fails fast (the connection
    is refused or the name does not resolve); this bounds the wait for one that is silent.
``FIRESIDE_DOWNLOAD_STALL_TIMEOUT``
    Seconds (default 60) within which a download must receive at least 64 KiB; a transfer
    that is silent or trickles slower than that is abandoned with a ``DownloadError``
    (the partial file is kept, and the same command resumes it).
``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_TOKEN``
    Honoured as huggingface_hub documents them.
"""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}

_offline: bool | None = None


def set_offline(value: bool | None) -> None:
    """Forbid (``True``) or allow (``False``) every network access by fireside.

    ``None`` returns to the default, which follows ``HF_HUB_OFFLINE``. Offline, models
    that are already downloaded load with no network call at all and a missing one
    raises :class:`fireside.errors.OfflineError`.
    """
    global _offline
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"offline must be a bool or None, got {type(value).__name__}")
    _offline = value


def is_offline() -> bool:
    """Whether fireside may not use the network (see :func:`set_offline`)."""
    if _offline is not None:
        return _offline
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.strip().upper() in _TRUE


def cache_dir() -> Path:
    """fireside's cache folder."""
    if env := os.environ.get("FIRESIDE_CACHE_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "fireside"


def models_dir() -> Path:
    """The folder that holds the models fireside downloaded."""
    if env := os.environ.get("FIRESIDE_MODELS_DIR"):
        return Path(env).expanduser()
    return cache_dir() / "models"


def hub_endpoint() -> str:
    """The Hugging Face Hub endpoint (``HF_ENDPOINT``), read now rather than at import."""
    return (os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT).rstrip("/")


def hf_cache_dir() -> Path:
    """huggingface_hub's own cache, read now rather than at import."""
    if env := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface",
    )
    return Path(hf_home).expanduser() / "hub"


def _seconds(var: str) -> float | None:
    value = os.environ.get(var)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{var} must be a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{var} must be a positive number of seconds, got {value!r}")
    return seconds


def hub_timeout() -> float:
    """Seconds to wait for a metadata answer from the Hub."""
    for var in ("FIRESIDE_HUB_TIMEOUT", "HF_HUB_ETAG_TIMEOUT"):
        if (seconds := _seconds(var)) is not None:
            return seconds
    return 10.0


def download_stall_timeout() -> float:
    """Seconds a download may take to receive 64 KiB before it is abandoned."""
    seconds = _seconds("FIRESIDE_DOWNLOAD_STALL_TIMEOUT")
    return 60.0 if seconds is None else seconds
