"""Type stub for fireside's native extension (csrc/).

The native layer is small and mechanical: it owns llama.cpp handles and exposes coarse
operations (load, tokenize, decode, sample). Everything a user reads is Python.
Errors are the classes of :mod:`fireside.errors`, raised from C++.
"""

from collections.abc import Callable, Sequence
from os import PathLike

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

LLAMA_CPP_COMMIT: str
"""The upstream llama.cpp commit this module was built from."""
RPC_PROTOCOL_VERSION: tuple[int, int, int]
"""The ggml RPC protocol version (major, minor, patch) this build speaks; zeros without RPC."""
GRAMMAR_LIMITS: dict[str, int]
"""The bounds ``Sampler.add_grammar`` checks, by name: ``max_bytes``, ``max_nesting``,
``max_repetition``, ``max_expansion``, ``max_branching`` and ``max_states`` (the parse states
a running grammar may track at once; past it ``sample``/``accept`` raise GrammarError)."""

# --- process ---------------------------------------------------------------------------

def system_info() -> str:
    """llama.cpp's description of the CPU features and backends compiled in."""

def supports_gpu_offload() -> bool:
    """Whether this build can offload layers to a GPU (or a remote RPC device)."""

def supports_rpc() -> bool:
    """Whether this build includes the ggml RPC backend."""

def supports_mmap() -> bool:
    """Whether models can be memory-mapped on this platform."""

def supports_mlock() -> bool:
    """Whether model memory can be locked in RAM on this platform."""

def max_devices() -> int:
    """The most devices llama.cpp can split one model across."""

class Device:
    """A compute device that ggml can see (CPU, GPU, accelerator or remote RPC)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def type(self) -> str:
        """One of ``"cpu"``, ``"gpu"``, ``"igpu"``, ``"accel"``."""
    @property
    def backend(self) -> str:
        """The ggml backend serving it: ``"CPU"``, ``"CUDA"``, ``"RPC"``, ..."""
    @property
    def remote(self) -> bool:
        """Whether it is a remote ggml RPC worker."""
    @property
    def memory_free(self) -> int:
        """Free memory in bytes (0 when the backend cannot tell)."""
    @property
    def memory_total(self) -> int:
        """Total memory in bytes (0 when the backend cannot tell)."""

def devices() -> list[Device]:
    """All devices ggml sees now, including registered RPC servers."""

def set_log_level(level: int) -> None:
    """Drop llama.cpp log messages below this Python logging level (default WARNING)."""

def flush_logs() -> None:
    """Emit the llama.cpp log messages gathered so far into the ``fireside.llama`` logger.

    Messages are queued without touching Python (llama.cpp logs from worker threads) and
    are flushed automatically after each native call; this forces it.
    """

def _set_compute_driver(driver: Callable[[], bool] | None) -> None:
    """Set the function the compute thread calls when woken (None: none; waits for a call
    under way). It returns whether it has more to do."""

def _wake_compute_driver() -> None:
    """Have the compute thread call its driver soon."""

def _on_compute_thread() -> bool:
    """Whether the calling thread is the compute thread."""

def _compute_handovers() -> int:
    """Computations handed to the compute thread by other threads since the start."""

def _send_wakeup(fd: int) -> bool:
    """Send one byte to the non-blocking socket ``fd`` without releasing the GIL; False
    when its buffer is full (wake-ups are pending already). OSError on a closed or bad
    socket."""

def json_schema_to_grammar(schema_json: str) -> str:
    """GBNF for a JSON schema given as JSON text, by llama.cpp's own converter (the one
    llama-server uses); GrammarError when it is invalid, unsupported, or enforceable only
    in part. Runs without the GIL."""

def rpc_add_server(endpoint: str) -> list[Device]:
    """Register a remote ggml RPC server (``host:port``); returns its devices.

    Raises ``fireside.errors.RemoteDeviceError`` (a ``ConnectionError``) when it cannot be
    used. :func:`fireside.rpc.connect` checks the endpoint first, with a timeout.
    """

def rpc_start_server(
    endpoint: str, *, cache_dir: str | None = None, n_threads: int = 0, mem_bytes: int = 0
) -> None:
    """Run a ggml RPC worker serving this machine's CPU on ``endpoint`` (blocks, GIL released,
    until the process ends). ``n_threads`` 0: the physical cores; ``mem_bytes`` 0: report
    the real free memory, otherwise that amount (clients split layers by it)."""

# --- model -----------------------------------------------------------------------------

TOKEN_ATTR_UNKNOWN: int
TOKEN_ATTR_UNUSED: int
TOKEN_ATTR_NORMAL: int
TOKEN_ATTR_CONTROL: int
TOKEN_ATTR_USER_DEFINED: int
TOKEN_ATTR_BYTE: int

class Model:
    """A loaded GGUF model: weights (unless ``vocab_only``), vocabulary and metadata."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        n_gpu_layers: int = 0,
        main_gpu: int = 0,
        devices: Sequence[str] | None = None,
        use_mmap: bool = True,
        use_mlock: bool = False,
        vocab_only: bool = False,
        check_tensors: bool = False,
        kv_overrides: dict[str, bool | int | float | str] | None = None,
        progress: Callable[[float], bool | None] | None = None,
    ) -> None:
        """Load ``path`` (the first file of a split model loads all its parts).

        ``progress(fraction)`` is called during the load; returning ``False`` cancels it
        and raises :class:`fireside.errors.LoadCancelled`. ``devices`` names devices (see
        :func:`devices`) to offload to; ``n_gpu_layers=-1`` offloads all layers. Without
        ``devices``, this machine's GPUs: RPC workers are used only when named.
        Raises ``FileNotFoundError``, ``IsADirectoryError`` or
        :class:`fireside.errors.ModelLoadError` (with llama.cpp's reason).
        """
    def close(self) -> None:
        """Release this handle; memory is freed once no Context or Sampler uses it."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    @property
    def metadata(self) -> dict[str, str]:
        """All GGUF key/values (arrays are summarised by llama.cpp)."""
    def chat_template(self, name: str | None = None) -> str | None:
        """The model's (or the named variant's) Jinja chat template, or ``None``."""
    @property
    def architecture(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def n_ctx_train(self) -> int:
        """Trained context length (0 for a ``vocab_only`` load, like the other hyper-parameters)."""
    @property
    def n_embd(self) -> int: ...
    @property
    def n_embd_out(self) -> int: ...
    @property
    def n_layer(self) -> int: ...
    @property
    def n_head(self) -> int: ...
    @property
    def n_head_kv(self) -> int: ...
    @property
    def n_params(self) -> int: ...
    @property
    def size(self) -> int:
        """Total size of the weights in bytes."""
    @property
    def has_encoder(self) -> bool: ...
    @property
    def has_decoder(self) -> bool: ...
    @property
    def vocab_only(self) -> bool: ...
    # vocabulary
    @property
    def n_vocab(self) -> int: ...
    @property
    def vocab_type(self) -> str:
        """``"spm"``, ``"bpe"``, ``"wpm"``, ``"ugm"``, ``"rwkv"``, ``"plamo2"`` or ``"none"``."""
    @property
    def bos(self) -> int:
        """Token id, or -1 when the vocabulary has none (same for the others)."""
    @property
    def eos(self) -> int: ...
    @property
    def eot(self) -> int: ...
    @property
    def pad(self) -> int: ...
    @property
    def sep(self) -> int: ...
    @property
    def nl(self) -> int: ...
    @property
    def add_bos(self) -> bool: ...
    @property
    def add_eos(self) -> bool: ...
    @property
    def eog_tokens(self) -> list[int]:
        """Every end-of-generation token id (eos, eot and similar), in order."""
    def is_eog(self, token: int) -> bool:
        """End of generation (eos, eot and similar)."""
    def is_control(self, token: int) -> bool: ...
    def token_text(self, token: int) -> str: ...
    def token_score(self, token: int) -> float: ...
    def token_attr(self, token: int) -> int:
        """Bit flags, see the ``TOKEN_ATTR_*`` constants."""
    def token_to_piece(self, token: int, *, special: bool = True, lstrip: int = 0) -> bytes:
        """The bytes of one token (may be part of a UTF-8 character)."""
    def tokenize(
        self, text: str | bytes, *, add_special: bool = True, parse_special: bool = False
    ) -> list[int]: ...
    def detokenize(
        self, tokens: Sequence[int], *, remove_special: bool = False, unparse_special: bool = False
    ) -> bytes: ...
    def load_lora(self, path: str | PathLike[str]) -> LoraAdapter:
        """Load a LoRA adapter for this model (apply it with ``Context.set_lora``)."""

class LoraAdapter:
    """A LoRA adapter loaded for one model (keeps that model alive)."""

    @property
    def path(self) -> str: ...
    @property
    def metadata(self) -> dict[str, str]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

# --- context -------------------------------------------------------------------------

class Perf:
    """llama.cpp's context counters plus fireside's own."""

    @property
    def t_load_ms(self) -> float: ...
    @property
    def t_prompt_eval_ms(self) -> float: ...
    @property
    def t_eval_ms(self) -> float: ...
    @property
    def n_prompt_eval(self) -> int:
        """Tokens evaluated in batches of more than one token."""
    @property
    def n_eval(self) -> int:
        """Tokens evaluated one at a time."""
    @property
    def n_decode_calls(self) -> int:
        """Successful ``decode`` calls since creation (or ``reset_perf``)."""
    @property
    def n_tokens_decoded(self) -> int:
        """Tokens passed to successful ``decode`` calls since creation (or ``reset_perf``)."""

class Context:
    """An inference context (KV cache and compute buffers) over a Model it keeps alive.

    All methods lock the context, so one Context may be shared by threads: calls are
    serialised. ``decode`` releases the GIL.
    """

    def __init__(
        self,
        model: Model,
        *,
        n_ctx: int = 0,
        n_batch: int = 2048,
        n_ubatch: int = 512,
        n_seq_max: int = 1,
        n_threads: int = 0,
        n_threads_batch: int = 0,
        flash_attn: str = "auto",
        type_k: str = "f16",
        type_v: str = "f16",
        embeddings: bool = False,
        pooling: str = "unspecified",
        offload_kqv: bool = True,
        kv_unified: bool = False,
        swa_full: bool = False,
    ) -> None:
        """``n_ctx=0`` takes the model's trained context; ``n_threads=0`` the physical cores.

        ``flash_attn``: ``"auto"``, ``"on"``, ``"off"``. ``type_k``/``type_v``: a ggml type
        name such as ``"f16"``, ``"q8_0"``. ``pooling``: ``"unspecified"`` (the model's),
        ``"none"``, ``"mean"``, ``"cls"``, ``"last"``, ``"rank"``.
        """
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def model(self) -> Model: ...
    @property
    def n_ctx(self) -> int: ...
    @property
    def n_ctx_seq(self) -> int:
        """Context available to each sequence."""
    @property
    def n_batch(self) -> int: ...
    @property
    def n_ubatch(self) -> int: ...
    @property
    def n_seq_max(self) -> int: ...
    @property
    def n_threads(self) -> int: ...
    @property
    def n_threads_batch(self) -> int: ...
    def set_threads(self, n_threads: int, n_threads_batch: int) -> None: ...
    @property
    def flash_attn(self) -> str: ...
    @property
    def type_k(self) -> str: ...
    @property
    def type_v(self) -> str: ...
    @property
    def embeddings(self) -> bool: ...
    @embeddings.setter
    def embeddings(self, value: bool) -> None: ...
    @property
    def pooling(self) -> str: ...
    def decode(
        self,
        tokens: Sequence[int],
        *,
        positions: Sequence[int] | None = None,
        seq_ids: Sequence[int] | int = 0,
        logits: Sequence[bool] | None = None,
    ) -> None:
        """Evaluate a batch (GIL released).

        ``positions=None`` continues each sequence after its last cached position.
        ``seq_ids`` gives one sequence per token (or one for all). ``logits`` marks the
        batch indices whose logits/embeddings are kept (default: the last only).
        Raises ``ValueError`` for an empty batch, a batch over ``n_batch``, bad token
        ids or sequence ids; :class:`~fireside.errors.ContextFullError` when the KV
        cache has no room; :class:`~fireside.errors.GenerationCancelled` after
        ``cancel()``. On failure the cache holds no part of the batch.
        """
    def logits(self, index: int = -1) -> npt.NDArray[np.float32]:
        """A copy of the logits at batch ``index`` of the last decode (-1: last output)."""
    def logprobs(
        self, index: int, token: int, top_n: int = 0
    ) -> tuple[float, list[tuple[int, float]]]:
        """log-softmax of the raw logits at ``index``: ``token``'s and the ``top_n`` best."""
    def embedding(self, index: int = -1) -> npt.NDArray[np.float32]:
        """The (unpooled) embedding at batch ``index`` (needs ``embeddings=True``)."""
    def seq_embedding(self, seq_id: int) -> npt.NDArray[np.float32]:
        """The pooled embedding of a sequence (needs ``embeddings=True`` and pooling)."""
    # memory (KV cache)
    def memory_clear(self) -> None:
        """Forget every sequence."""
    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove positions [p0, p1) of a sequence (-1: open end, seq -1: all sequences)."""
    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None: ...
    def seq_keep(self, seq_id: int) -> None: ...
    def seq_add(self, seq_id: int, p0: int, p1: int, delta: int) -> None:
        """Shift positions [p0, p1) by ``delta`` (needs a model whose cache can shift)."""
    def seq_pos_min(self, seq_id: int) -> int:
        """Smallest cached position, or -1 when the sequence is empty."""
    def seq_pos_max(self, seq_id: int) -> int:
        """Largest cached position, or -1 when the sequence is empty."""
    @property
    def can_shift(self) -> bool: ...
    # state
    def state_get(self) -> bytes: ...
    def state_set(self, data: bytes) -> None: ...
    def state_save(self, path: str | PathLike[str], tokens: Sequence[int] = ()) -> None: ...
    def state_load(self, path: str | PathLike[str]) -> list[int]:
        """Restore a state file; returns the tokens saved with it."""
    def seq_state_get(self, seq_id: int) -> bytes: ...
    def seq_state_set(self, data: bytes, seq_id: int) -> None: ...
    def seq_state_save(
        self, path: str | PathLike[str], seq_id: int, tokens: Sequence[int] = ()
    ) -> None: ...
    def seq_state_load(self, path: str | PathLike[str], seq_id: int) -> list[int]: ...
    # control
    def cancel(self) -> None:
        """Abort the running decode and any later one until ``reset_cancel()`` (thread-safe)."""
    def reset_cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...
    def set_lora(self, adapters: Sequence[tuple[LoraAdapter, float]]) -> None:
        """Apply these adapters with their scales (an empty list removes all)."""
    def perf(self) -> Perf: ...
    def reset_perf(self) -> None: ...

# --- sampling ------------------------------------------------------------------------

class Sampler:
    """A llama.cpp sampler chain; add stages in order, then ``sample``.

    Every ``add_*`` returns the sampler itself so calls chain. A chain must end in a
    selecting stage (``greedy``, ``dist`` or a mirostat).
    """

    def __init__(self, model: Model) -> None: ...
    def add_greedy(self) -> Sampler: ...
    def add_dist(self, seed: int) -> Sampler: ...
    def add_top_k(self, k: int) -> Sampler: ...
    def add_top_p(self, p: float, min_keep: int = 1) -> Sampler: ...
    def add_min_p(self, p: float, min_keep: int = 1) -> Sampler: ...
    def add_typical(self, p: float, min_keep: int = 1) -> Sampler: ...
    def add_temperature(self, t: float, delta: float = 0.0, exponent: float = 1.0) -> Sampler:
        """Temperature; ``delta > 0`` makes it dynamic in [t - delta, t + delta]."""
    def add_penalties(
        self, last_n: int = 64, repeat: float = 1.0, frequency: float = 0.0, presence: float = 0.0
    ) -> Sampler: ...
    def add_dry(
        self,
        multiplier: float,
        base: float = 1.75,
        allowed_length: int = 2,
        last_n: int = -1,
        breakers: Sequence[str] = ("\n", ":", '"', "*"),
    ) -> Sampler: ...
    def add_mirostat(
        self, seed: int, tau: float = 5.0, eta: float = 0.1, m: int = 100
    ) -> Sampler: ...
    def add_mirostat_v2(self, seed: int, tau: float = 5.0, eta: float = 0.1) -> Sampler: ...
    def add_logit_bias(self, bias: dict[int, float]) -> Sampler: ...
    def add_grammar(self, grammar: str, root: str = "root") -> Sampler:
        """A GBNF grammar, checked against ``GRAMMAR_LIMITS`` and built without the GIL;
        raises :class:`~fireside.errors.GrammarError` naming the limit or llama.cpp's reason."""
    @property
    def stages(self) -> list[str]:
        """llama.cpp's names of the stages, in order."""
    @property
    def picks_top_k_first(self) -> bool:
        """True when the top-k stage picks its candidates straight from the logits (only a
        logit bias before it; after it, stages that read the candidates alone): the same
        draw as the chain without copying the vocabulary (tied logits ordered by id)."""
    def sample(self, context: Context, index: int = -1) -> int:
        """Pick a token from the logits at batch ``index`` of the last decode and accept it.

        With a grammar, runs without the GIL and raises
        :class:`~fireside.errors.GrammarError` when the grammar cannot go on (over its
        ``max_states`` budget, or at a dead end)."""
    def accept(self, token: int) -> None:
        """Tell the stateful stages (penalties, grammar, ...) about a token chosen elsewhere."""
    def reset(self) -> None: ...
    def clone(self) -> Sampler: ...
    def close(self) -> None: ...
