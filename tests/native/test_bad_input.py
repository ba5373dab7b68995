"""Bad input gets the named exception, the process survives and the objects stay usable."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fireside import _core
from fireside.errors import (
    ClosedError,
    ContextFullError,
    DecodeError,
    FiresideError,
    GrammarError,
    ModelLoadError,
)

ContextFactory = Callable[..., _core.Context]
PROMPT = "The capital of France is"


@pytest.fixture
def ctx(new_context: ContextFactory) -> Iterator[_core.Context]:
    """A context that must still decode and sample correctly once the test is done."""
    context = new_context(n_ctx=256, n_batch=64)
    yield context
    assert_usable(context)


def assert_usable(ctx: _core.Context) -> None:
    model = ctx.model
    ctx.reset_cancel()
    ctx.memory_clear()
    ctx.decode(model.tokenize(PROMPT))
    token = _core.Sampler(model).add_greedy().sample(ctx)
    assert model.detokenize([token]) == b" Paris"


# --- loading ---------------------------------------------------------------------------


def test_missing_path(tmp_path: Path, model: _core.Model) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(FileNotFoundError) as info:
        _core.Model(missing)
    assert info.value.filename == str(missing)
    assert model.n_vocab == 49152


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as info:
        _core.Model(tmp_path)
    assert info.value.filename == str(tmp_path)


def load_error(path: Path) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        _core.Model(path)
    error = info.value
    assert isinstance(error, FiresideError) and isinstance(error, RuntimeError)
    assert error.path == str(path)
    assert error.reason, "ModelLoadError.reason is empty"
    assert str(path) in str(error)
    return error


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    assert "empty" in load_error(path).reason  # type: ignore[operator]


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.gguf"
    path.write_bytes(np.random.default_rng(0).bytes(64 * 1024))
    assert "GGUF" in load_error(path).reason  # type: ignore[operator]


@pytest.fixture(scope="module")
def truncated(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 5 MB of the real model: a valid header, tensor data cut short."""
    path = tmp_path_factory.mktemp("truncated") / "truncated.gguf"
    with model_path.open("rb") as src:
        path.write_bytes(src.read(5 << 20))
    return path


def test_truncated_model(truncated: Path, model: _core.Model) -> None:
    load_error(truncated)
    assert model.tokenize("still fine") == model.tokenize(b"still fine")


def test_truncated_model_reason_is_llama_cpps_explanation(truncated: Path) -> None:
    """llama.cpp says what is wrong ('... data is not within the file bounds, model is
    corrupted or incomplete') before its generic 'failed to load model'; the reason must be
    the explanation."""
    reason = load_error(truncated).reason or ""
    assert "failed to load model" not in reason
    assert "file bounds" in reason or "incomplete" in reason


def test_truncated_header(model_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "header.gguf"
    with model_path.open("rb") as src:
        path.write_bytes(src.read(100))
    load_error(path)


@pytest.mark.parametrize(
    "magic", [0x67676D6C, 0x67676D66, 0x67676A74], ids=["ggml", "ggmf", "ggjt"]
)
def test_old_ggml_file(tmp_path: Path, magic: int) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(struct.pack("<II", magic, 3) + bytes(4096))
    error = load_error(path)
    assert "GGUF" in str(error)
    assert "GGML" in (error.reason or "")


# --- grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grammar", "explanation"),
    [
        ("root ::= foo", "Undefined rule identifier 'foo'"),
        ('root ::= "abc', "unexpected end of input"),
        ('root ::= ("a"', "expecting ')'"),
    ],
)
def test_invalid_grammar(model: _core.Model, grammar: str, explanation: str) -> None:
    sampler = _core.Sampler(model)
    with pytest.raises(GrammarError, match="invalid grammar") as info:
        sampler.add_grammar(grammar)
    assert explanation in str(info.value)
    assert isinstance(info.value, ValueError)
    assert sampler.stages == []  # nothing half-added


def test_grammar_without_root(model: _core.Model) -> None:
    with pytest.raises(GrammarError, match="root"):
        _core.Sampler(model).add_grammar('start ::= "a"')
    _core.Sampler(model).add_grammar('start ::= "a"', root="start")


def test_valid_grammar_constrains_sampling(ctx: _core.Context, model: _core.Model) -> None:
    sampler = _core.Sampler(model).add_grammar('root ::= "yes" | "no"').add_greedy()
    ctx.decode(model.tokenize("Is Paris in France? Answer:"))
    piece = model.token_to_piece(sampler.sample(ctx))
    assert piece and (b"yes".startswith(piece) or b"no".startswith(piece))


def test_inverted_repetition_bounds_do_not_exhaust_memory(model_path: Path) -> None:
    """``x{3,1}`` makes llama.cpp's grammar parser allocate without end (the process is
    OOM-killed); it must be a GrammarError. Run under a 1 GiB address-space limit."""
    code = textwrap.dedent(
        """
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from fireside import _core
        from fireside.errors import GrammarError
        model = _core.Model(sys.argv[1], vocab_only=True)
        try:
            _core.Sampler(model).add_grammar('root ::= "a"{3,1}')
        except GrammarError as e:
            print("GrammarError:", e)
        else:
            print("accepted")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(model_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-2000:])
    assert result.stdout.startswith("GrammarError:"), result.stdout
    assert "bad_alloc" not in result.stdout


# --- decode ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 49152, 2**31 - 1])
def test_token_id_out_of_range(ctx: _core.Context, bad: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        ctx.decode([1, bad, 2])
    assert ctx.seq_pos_max(0) == -1


def test_empty_batch(ctx: _core.Context) -> None:
    with pytest.raises(ValueError, match="at least one token"):
        ctx.decode([])


def test_batch_larger_than_n_batch(ctx: _core.Context) -> None:
    with pytest.raises(ValueError, match="n_batch=64"):
        ctx.decode([10] * 65)
    ctx.decode([10] * 64)  # exactly n_batch is fine
    assert ctx.seq_pos_max(0) == 63


def test_more_tokens_than_n_ctx(ctx: _core.Context) -> None:
    n_ctx = ctx.n_ctx
    for _ in range(n_ctx // 64):
        ctx.decode([10] * 64)
    assert ctx.seq_pos_max(0) == n_ctx - 1
    with pytest.raises(ContextFullError) as info:
        ctx.decode([10])
    assert isinstance(info.value, RuntimeError)
    assert info.value.n_ctx == n_ctx
    assert info.value.n_tokens is not None and info.value.n_tokens > n_ctx - 1
    assert ctx.seq_pos_max(0) == n_ctx - 1  # nothing of the refused batch was cached
    ctx.seq_rm(0, n_ctx - 8, -1)
    ctx.decode([10] * 8)  # room again
    assert ctx.seq_pos_max(0) == n_ctx - 1


def test_shared_cache_full(new_context: ContextFactory) -> None:
    """Two sequences sharing one 256-cell cache: the second finds no room (llama.cpp's
    'no KV slot'), not a position past n_ctx."""
    ctx = new_context(n_ctx=256, n_batch=256, n_seq_max=2, kv_unified=True)
    ctx.decode([10] * 200, seq_ids=0)
    with pytest.raises(ContextFullError) as info:
        ctx.decode([10] * 100, seq_ids=1)
    assert (info.value.n_ctx, info.value.n_tokens) == (256, 100)
    assert (ctx.seq_pos_max(0), ctx.seq_pos_max(1)) == (199, -1)
    ctx.decode([10] * 50, seq_ids=1)  # what fits still goes in
    assert ctx.seq_pos_max(1) == 49
    assert_usable(ctx)


def test_bad_sequence_ids_in_decode(ctx: _core.Context) -> None:
    for seq_ids in (1, -1, [0, 1]):
        with pytest.raises(ValueError, match="sequence id"):
            ctx.decode([1, 2], seq_ids=seq_ids)
    with pytest.raises(ValueError, match="seq_ids has 1 entries"):
        ctx.decode([1, 2], seq_ids=[0])
    with pytest.raises(ValueError, match="logits has 1 entries"):
        ctx.decode([1, 2], logits=[True])
    with pytest.raises(ValueError, match="positions has 1 entries"):
        ctx.decode([1, 2], positions=[0])
    with pytest.raises(ValueError, match=">= 0"):
        ctx.decode([1], positions=[-1])
    assert ctx.seq_pos_max(0) == -1


def test_non_consecutive_positions(ctx: _core.Context) -> None:
    ctx.decode([1, 2, 3])
    with pytest.raises(DecodeError):
        ctx.decode([4], positions=[10])
    assert ctx.seq_pos_max(0) == 2


def test_non_consecutive_positions_explained(ctx: _core.Context) -> None:
    """llama.cpp logs why ('... sequence positions remain consecutive: Y = X + 1') before
    its generic 'failed to decode'; the error must carry the explanation."""
    ctx.decode([1, 2, 3])
    with pytest.raises(DecodeError, match="consecutive"):
        ctx.decode([4], positions=[10])


def test_logits_index_without_output(ctx: _core.Context) -> None:
    with pytest.raises(IndexError):
        ctx.logits()  # no decode yet
    ctx.decode([1, 2, 3, 4], logits=[True, False, True, False])
    with pytest.raises(IndexError, match="no output"):
        ctx.logits(1)
    with pytest.raises(IndexError, match="no output"):
        ctx.logits(4)
    with pytest.raises(IndexError, match="2 output"):
        ctx.logits(-3)
    assert ctx.logits(-1).shape == ctx.logits(2).shape
    assert np.array_equal(ctx.logits(-1), ctx.logits(2))
    assert np.array_equal(ctx.logits(-2), ctx.logits(0))
    with pytest.raises(IndexError):
        _core.Sampler(ctx.model).add_greedy().sample(ctx, 1)
    with pytest.raises(ValueError, match="embeddings=True"):
        ctx.embedding(0)


def test_failed_decode_clears_outputs(ctx: _core.Context) -> None:
    ctx.decode([1, 2])
    with pytest.raises(ValueError):
        ctx.decode([1, 99999])
    ctx.logits()  # validation failures happen before anything changes
    ctx.cancel()
    with pytest.raises(FiresideError):
        ctx.decode([3])
    with pytest.raises(IndexError):
        ctx.logits()  # a decode that ran and failed leaves no stale outputs


def test_bad_state_data(ctx: _core.Context, tmp_path: Path) -> None:
    ctx.decode([1, 2, 3])
    with pytest.raises(ValueError, match="state"):
        ctx.state_set(b"not a state")
    with pytest.raises(ValueError, match="state"):
        ctx.seq_state_set(b"not a state", 0)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match="state"):
        ctx.state_load(garbage)
    with pytest.raises(ValueError, match="state"):
        ctx.seq_state_load(tmp_path / "missing.bin", 0)


# --- sampler ---------------------------------------------------------------------------


def test_sampler_without_selecting_stage(ctx: _core.Context, model: _core.Model) -> None:
    ctx.decode([1, 2, 3])
    for sampler in (_core.Sampler(model), _core.Sampler(model).add_top_k(5).add_temperature(0.5)):
        with pytest.raises(ValueError, match="selecting stage"):
            sampler.sample(ctx)


def test_stage_after_selecting_stage(model: _core.Model) -> None:
    sampler = _core.Sampler(model).add_greedy()
    with pytest.raises(ValueError, match="already ends"):
        sampler.add_top_k(5)
    with pytest.raises(ValueError, match="already ends"):
        sampler.add_dist(1)
    assert sampler.stages == ["greedy"]


@pytest.mark.parametrize(
    "add",
    [
        lambda s: s.add_top_k(-1),
        lambda s: s.add_top_p(1.5),
        lambda s: s.add_min_p(-0.1),
        lambda s: s.add_typical(float("nan")),
        lambda s: s.add_temperature(-1.0),
        lambda s: s.add_temperature(float("inf")),
        lambda s: s.add_penalties(repeat=0.0),
        lambda s: s.add_logit_bias({49152: 1.0}),
        lambda s: s.add_logit_bias({5: float("nan")}),
        lambda s: s.accept(-5),
    ],
)
def test_bad_sampler_arguments(model: _core.Model, add: Callable[[_core.Sampler], object]) -> None:
    sampler = _core.Sampler(model)
    with pytest.raises(ValueError):
        add(sampler)
    assert sampler.stages == []


def test_sampler_of_another_model(ctx: _core.Context, gemma: _core.Model) -> None:
    ctx.decode([1, 2, 3])
    with pytest.raises(ValueError, match="another model"):
        _core.Sampler(gemma).add_greedy().sample(ctx)


def test_closed_objects(new_context: ContextFactory, model: _core.Model) -> None:
    ctx = new_context()
    ctx.decode([1, 2, 3])
    sampler = _core.Sampler(model).add_greedy()
    ctx.close()
    ctx.close()
    with pytest.raises(ClosedError):
        sampler.sample(ctx)
    for call in (ctx.logits, ctx.state_get, ctx.memory_clear, ctx.perf, lambda: ctx.n_ctx):
        with pytest.raises(ClosedError):
            call()
    sampler.close()
    with pytest.raises(ClosedError):
        sampler.add_greedy()
    assert "closed" in repr(ctx)


# --- context options -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("flash_attn", "maybe", "flash_attn"),
        ("type_k", "q9_9", "type_k"),
        ("type_v", "float", "type_v"),
        ("pooling", "max", "pooling"),
        ("n_seq_max", 0, "n_seq_max"),
        ("n_seq_max", 100_000, "n_seq_max"),
        ("n_batch", 0, "n_batch"),
        ("n_ubatch", 0, "n_ubatch"),
        ("n_threads", -2, "thread"),
    ],
)
def test_bad_context_options(model: _core.Model, option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _core.Context(model, n_ctx=256, **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n_ctx", "n_batch", "embeddings"),
    [(256, 4, False), (256, 4, True), (6, 512, False)],
    ids=["batch", "batch-embeddings", "context"],
)
def test_more_sequences_than_batch_room(
    model: _core.Model, n_ctx: int, n_batch: int, embeddings: bool
) -> None:
    # llama.cpp aborts the process here (an output row per sequence must fit one batch)
    with pytest.raises(ValueError, match=r"n_seq_max \(8\) must not exceed"):
        _core.Context(model, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=8, embeddings=embeddings)
    _core.Context(model, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=4).close()  # room for 4


def test_bad_thread_counts(ctx: _core.Context) -> None:
    with pytest.raises(ValueError, match="thread"):
        ctx.set_threads(0, 1)


THREADS_CHILD = textwrap.dedent(
    """
    import sys
    from fireside import _core
    model = _core.Model(sys.argv[1])
    ctx = _core.Context(model, n_ctx=256, n_threads=1)
    for make in (
        lambda: _core.Context(model, n_ctx=256, n_threads=4096),
        lambda: _core.Context(model, n_ctx=256, n_threads=1, n_threads_batch=4096),
        lambda: ctx.set_threads(4096, 4096),
    ):
        try:
            make()
        except ValueError as e:
            print("ValueError:", e)
        else:
            print("accepted")  # and not used: decoding now would spawn 4096 threads
    """
)


def test_absurd_thread_counts(model_path: Path) -> None:
    """Beyond ggml's limit (512) a thread count is a ValueError up front: accepted, the next
    decode would end the process ('libgomp: Thread creation failed')."""
    result = subprocess.run(
        [sys.executable, "-c", THREADS_CHILD, str(model_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("ValueError:") for line in lines), lines


# --- sequence ids of the memory operations (each in a child: a failed check aborts) ------

SEQ_CALLS = [
    "ctx.seq_pos_max(1000)",
    "ctx.seq_pos_min(-2)",
    "ctx.seq_rm(-5)",
    "ctx.seq_rm(300)",
    "ctx.seq_keep(-1)",
    "ctx.seq_keep(2)",
    "ctx.seq_add(999, 0, -1, 1)",
    "ctx.seq_cp(0, 5)",
    "ctx.seq_state_get(999)",
    "ctx.seq_state_set(ctx.seq_state_get(0), 999)",
    "ctx.seq_state_save(path, 999)",
    "ctx.seq_state_load(path, 999)",
    "ctx.seq_embedding(999)",
]

CHILD = textwrap.dedent(
    """
    import os, sys, tempfile
    from fireside import _core
    model = _core.Model(sys.argv[1])
    ctx = _core.Context(model, n_ctx=256, n_seq_max=2, n_threads=1, embeddings=True,
                        pooling="mean")
    ctx.decode([1, 2, 3])
    path = os.path.join(tempfile.mkdtemp(), "seq.bin")
    ctx.seq_state_save(path, 0)
    try:
        eval(sys.argv[2])
    except (ValueError, IndexError) as e:
        print("clear error:", type(e).__name__, e)
    except Exception as e:
        print("other:", type(e).__name__, e)
    else:
        print("no error")
    ctx.decode([4])
    print("alive", ctx.seq_pos_max(0))
    """
)


@pytest.fixture(scope="module")
def seq_call_results(model_path: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run every call of SEQ_CALLS in its own child process, all at once."""
    children = {
        call: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(model_path), call],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for call in SEQ_CALLS
    }
    results = {}
    for call, child in children.items():
        out, err = child.communicate(timeout=300)
        results[call] = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    return results


@pytest.mark.parametrize("call", SEQ_CALLS)
def test_out_of_range_sequence_id(
    seq_call_results: dict[str, subprocess.CompletedProcess[str]], call: str
) -> None:
    """A sequence id outside [0, n_seq_max) is a ValueError (or IndexError), never an abort,
    a misleading OSError or a silent no-op."""
    result = seq_call_results[call]
    assert result.returncode == 0, f"{call} killed the process: {result.stderr[-1500:]}"
    first, *_ = result.stdout.splitlines() or [""]
    assert first.startswith("clear error:"), f"{call}: {result.stdout}"
    assert "alive 3" in result.stdout


def test_state_restore_forgets_the_last_outputs(model: _core.Model) -> None:
    """A restored state holds no logits: reading the previous decode's must not look valid."""
    ctx = _core.Context(model, n_ctx=256, n_threads=1)
    ctx.decode([1, 2, 3])
    saved = ctx.state_get()
    ctx.logits()
    ctx.state_set(saved)
    with pytest.raises(IndexError):
        ctx.logits()
    ctx.decode([4])
    assert ctx.logits().shape == (model.n_vocab,)
    ctx.close()
