"""The converter against an independent reference: all-MiniLM-L6-v2, original weights.

The reference is a plain-numpy forward pass of the same safetensors written here (BERT:
embeddings, 6 post-norm encoder layers with exact-erf GELU, mean pooling, L2 norm),
with token ids from the ``tokenizers`` package, so neither llama.cpp's graph nor its
tokenizer is trusted. Error cases run on a tiny random BERT written by the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fireside import Model
from fireside.embeddings import Embedder
from fireside.errors import ConversionError
from fireside.hub.convert import convert_model

CLI = [sys.executable, "-m", "fireside.cli"]

SENTENCES = [
    "a cat sat on the mat",
    "a kitten rests on a rug",
    "quarterly stock market report",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "I'd like two tickets to Paris, please!",
    "SELECT name, email FROM users WHERE id = 42;",
    "Die Katze schläft auf dem Sofa.",
    "Café crème, naïve résumé and a façade.",
    "Mount Everest is 8,849 metres tall.",
    "def add(a, b): return a + b",
    "e-mail me at someone@example.org before 5pm",
    "Unbelievably, the antidisestablishmentarianism debate continued.",
    "東京は日本の首都です",
    "Rain is expected tomorrow afternoon in the north.",
    "The patient presented with acute abdominal pain and fever.",
    "GPUs accelerate matrix multiplication for neural networks",
    "She sells seashells by the seashore",
    "ok",
]


# -- the independent reference -----------------------------------------------------


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7)
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * w + b


class Reference:
    """sentence-transformers' all-MiniLM-L6-v2, in float64 numpy."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.w = {
            k: v.astype(np.float64) for k, v in load_file(folder / "model.safetensors").items()
        }
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text).ids)

    def embed(self, text: str) -> np.ndarray:
        w = self.w
        ids = self.ids(text)
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads, dim = 12, 32
        for i in range(6):
            p = f"encoder.layer.{i}."

            def lin(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin(x, "attention.self.query").reshape(n, heads, dim).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(n, heads, dim).transpose(1, 0, 2)
            v = lin(x, "attention.self.value").reshape(n, heads, dim).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(dim)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            att = (scores @ v).transpose(1, 0, 2).reshape(n, heads * dim)
            x = _layer_norm(
                x + lin(att, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / np.sqrt(2.0)))
            x = _layer_norm(
                x + lin(h, "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)


@pytest.fixture(scope="module")
def reference(minilm_dir: Path) -> Reference:
    return Reference(minilm_dir)


@pytest.fixture(scope="module")
def expected(reference: Reference) -> np.ndarray:
    return np.stack([reference.embed(s) for s in SENTENCES])


@pytest.fixture(scope="module")
def converted(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("converted")
    return {
        t: convert_model(minilm_dir, out / f"minilm-{t}.gguf", out_type=t)
        for t in ("f16", "f32", "q8_0")
    }


def _embed(path: Path, texts: list[str]) -> np.ndarray:
    with Model(path, embedding=True, n_threads=1) as model, Embedder(model) as embedder:
        return embedder.embed(texts)


# -- the real model ------------------------------------------------------------------


def test_the_cli_converts_the_real_directory_into_a_gguf_llama_cpp_loads(
    minilm_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "all-MiniLM-L6-v2.gguf"
    done = subprocess.run(
        [*CLI, "convert", str(minilm_dir), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left
    with Model(out, embedding=True, n_threads=1) as model:
        md = model.core.metadata
        assert model.core.architecture == "bert"
        assert model.core.n_embd == 384
        assert model.core.n_ctx_train == 512
        assert md["bert.block_count"] == "6"
        assert md["bert.pooling_type"] == "1"  # mean, from 1_Pooling/config.json
        assert md["bert.attention.causal"] == "false"
        assert md["general.file_type"] == "1"  # mostly f16
        assert md["tokenizer.ggml.model"] == "bert"
        assert model.core.n_vocab == 30522


@pytest.mark.parametrize(("out_type", "bound"), [("f32", 0.999), ("f16", 0.999), ("q8_0", 0.99)])
def test_embeddings_match_the_numpy_reference(
    converted: dict[str, Path], expected: np.ndarray, out_type: str, bound: float
) -> None:
    # f32/f16 measured here: min 0.999998. q8_0 keeps 8 bits per weight with one scale
    # per 32: min 0.998, mean 0.9996, so 0.99 leaves a margin and still fails on a wrong
    # layout (unrelated sentences are at 0.0-0.6)
    got = _embed(converted[out_type], SENTENCES)
    assert got.shape == (len(SENTENCES), 384)
    cosines = np.sum(got * expected, axis=1)
    assert cosines.min() >= bound, dict(zip(SENTENCES, cosines.round(5)))
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_llama_cpp_tokenizes_as_the_tokenizers_package(
    converted: dict[str, Path], reference: Reference
) -> None:
    with Model(converted["f16"], embedding=True, n_threads=1) as model:
        for text in SENTENCES:
            assert model.core.tokenize(text, add_special=True, parse_special=False) == (
                reference.ids(text)
            ), text


def test_the_sanity_figures_of_models_md_hold(converted: dict[str, Path]) -> None:
    cat, kitten, stocks = _embed(converted["f16"], SENTENCES[:3])
    assert float(cat @ kitten) == pytest.approx(0.628, abs=0.005)
    assert float(cat @ stocks) == pytest.approx(0.011, abs=0.005)


def test_every_type_loads_with_its_file_type_and_size(converted: dict[str, Path]) -> None:
    sizes = {t: p.stat().st_size for t, p in converted.items()}
    assert sizes["q8_0"] < sizes["f16"] < sizes["f32"]
    for out_type, file_type in (("f32", "0"), ("f16", "1"), ("q8_0", "7")):
        with Model(converted[out_type], embedding=True, n_threads=1) as model:
            assert model.core.metadata["general.file_type"] == file_type


def test_the_default_output_goes_inside_the_directory(minilm_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "all-MiniLM-L6-v2"
    copy.mkdir()
    for item in minilm_dir.iterdir():
        (copy / item.name).symlink_to(item)
    path = convert_model(copy, out_type="q8_0")
    assert path == copy / "all-MiniLM-L6-v2-Q8_0.gguf"
    with Model(path, embedding=True, n_threads=1) as model:
        assert model.core.metadata["general.name"] == "all-MiniLM-L6-v2"


# -- bad input, on a tiny random BERT -------------------------------------------------

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "."]


def _tiny_bert(
    folder: Path, *, drop: str | None = None, nan_in: str | None = None, n_pos: int = 512
) -> Path:
    import json

    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    n_embd, n_ff, n_vocab = 32, 64, len(TINY_VOCAB)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": n_embd,
        "intermediate_size": n_ff,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "max_position_embeddings": n_pos,
        "vocab_size": n_vocab,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.05

    tensors = {
        "embeddings.word_embeddings.weight": r(n_vocab, n_embd),
        "embeddings.position_embeddings.weight": r(n_pos, n_embd),
        "embeddings.token_type_embeddings.weight": r(2, n_embd),
        "embeddings.LayerNorm.weight": np.ones(n_embd, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(n_embd, np.float32),
        "embeddings.position_ids": np.arange(n_pos, dtype=np.int64)[None],
    }
    for i in range(2):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            tensors[f"{p}attention.self.{name}.weight"] = r(n_embd, n_embd)
            tensors[f"{p}attention.self.{name}.bias"] = r(n_embd)
        tensors[p + "attention.output.dense.weight"] = r(n_embd, n_embd)
        tensors[p + "attention.output.dense.bias"] = r(n_embd)
        tensors[p + "intermediate.dense.weight"] = r(n_ff, n_embd)
        tensors[p + "intermediate.dense.bias"] = r(n_ff)
        tensors[p + "output.dense.weight"] = r(n_embd, n_ff)
        tensors[p + "output.dense.bias"] = r(n_embd)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[f"{p}{norm}.weight"] = np.ones(n_embd, np.float32)
            tensors[f"{p}{norm}.bias"] = np.zeros(n_embd, np.float32)
    if drop:
        del tensors[drop]
    if nan_in:
        tensors[nan_in][0] = np.nan
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def test_a_tiny_bert_without_modules_json_converts_and_embeds(tmp_path: Path) -> None:
    path = convert_model(_tiny_bert(tmp_path / "tiny"), tmp_path / "tiny.gguf")
    with Model(path, embedding=True, n_threads=1) as model:
        assert "bert.pooling_type" not in model.core.metadata  # none declared: mean is used
        tokens = model.core.tokenize("The cats sat.", add_special=True, parse_special=False)
        assert tokens == [2, 5, 6, 8, 7, 9, 3]  # [CLS] the cat ##s sat . [SEP], lowercased
        vector = Embedder(model).embed("the cat sat")
        assert vector.shape == (32,) and np.isfinite(vector).all()


def test_a_model_with_a_short_context_embeds_many_texts(tmp_path: Path) -> None:
    # 16 positions but 32 texts per decode by default: llama.cpp aborted the process here
    path = convert_model(_tiny_bert(tmp_path / "tiny", n_pos=16), tmp_path / "tiny.gguf")
    with Model(path, embedding=True, n_threads=1) as model:
        vectors = Embedder(model).embed(["the cat sat", "a cat", "sat"] * 20)
        assert vectors.shape == (60, 32) and np.isfinite(vectors).all()
        assert vectors[0] @ vectors[3] > 0.999  # the same text in another batch


def test_an_unsupported_architecture_is_a_clear_cli_error(tmp_path: Path) -> None:
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    done = subprocess.run(
        [*CLI, "convert", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "LlamaForCausalLM is not supported" in done.stderr
    assert "BertModel" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(folder.iterdir()) == [folder / "config.json"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"model_type": "nomic_bert"}', "model_type 'nomic_bert' is not supported"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_config_is_refused_before_anything_is_written(
    tmp_path: Path, config: str, message: str
) -> None:
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ConversionError, match=message):
        convert_model(tmp_path, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_missing_or_misshapen_tensors_are_named(tmp_path: Path) -> None:
    missing = _tiny_bert(tmp_path / "a", drop="encoder.layer.1.output.dense.bias")
    with pytest.raises(ConversionError, match=r"missing, e\.g\. blk\.1\.ffn_down\.bias"):
        convert_model(missing, tmp_path / "a.gguf")
    wrong = _tiny_bert(tmp_path / "b")
    (wrong / "config.json").write_text(
        (wrong / "config.json")
        .read_text()
        .replace('"intermediate_size": 64', '"intermediate_size": 48')
    )
    with pytest.raises(
        ConversionError, match=r"dense\.bias' has shape \[64\], config\.json implies \[48\]"
    ):
        convert_model(wrong, tmp_path / "b.gguf")
    with pytest.raises(ConversionError, match="choose one of f32, f16, q8_0"):
        convert_model(wrong, tmp_path / "b.gguf", out_type="q4_0")
    with pytest.raises(ConversionError, match="no such directory"):
        convert_model(tmp_path / "nowhere")


def test_a_failed_conversion_leaves_the_old_file_whole_and_no_partial(tmp_path: Path) -> None:
    good = convert_model(_tiny_bert(tmp_path / "good"), tmp_path / "out.gguf")
    before = good.read_bytes()
    # NaN in the last layer: found while writing, after most tensors are converted
    bad = _tiny_bert(tmp_path / "bad", nan_in="encoder.layer.1.output.dense.weight")
    with pytest.raises(ConversionError, match="NaN or infinite"):
        convert_model(bad, tmp_path / "out.gguf")
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "out.gguf"]
