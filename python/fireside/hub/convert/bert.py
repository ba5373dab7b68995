"""The BERT family (``BertModel``: MiniLM, BGE, E5 ...) as llama.cpp's ``bert`` architecture.

The layout follows llama.cpp's own converter (``convert_hf_to_gguf.py``, class
``BertModel``): the ``bert.*`` hyperparameters with non-causal attention and the
sentence-transformers pooling type; the WordPiece vocabulary in llama.cpp's form (a word
start is marked with ``▁``, a ``##`` continuation loses its ``##``, special tokens stay as
they are); token types, special token ids and the normalizer's lowercasing; and the
tensor names ``token_embd``, ``blk.N.attn_q`` ... with the pooler head dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from fireside.errors import ConversionError

from .checkpoint import Weights, read_json

ARCHITECTURES = ("BertModel",)
"""The Hugging Face ``architectures`` this module converts."""

MODEL_TYPES = ("bert",)
"""The ``model_type`` values accepted when ``architectures`` is missing."""

_MAX_LAYERS = 256
_MAX_DIM = 1 << 16
_MAX_VOCAB = 1 << 21
_MAX_POSITIONS = 1 << 20

_LAYER_TENSORS = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_TOP_TENSORS = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.LayerNorm": "token_embd_norm",
}
_DROPPED = re.compile(r"(embeddings\.position_ids|pooler\..*|cls\..*)")
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)")
_TOP = re.compile(r"(embeddings\.[A-Za-z_]+)\.(weight|bias)")
_POOLING = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS}
_SPECIAL = ("unk", "sep", "pad", "cls", "mask")
_SPECIAL_KEYS = {  # llama.cpp's key names (its spelling of "seperator" included)
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "unk": "tokenizer.ggml.unknown_token_id",
    "sep": "tokenizer.ggml.seperator_token_id",
    "pad": "tokenizer.ggml.padding_token_id",
    "cls": "tokenizer.ggml.cls_token_id",
    "mask": "tokenizer.ggml.mask_token_id",
}


def _int(config: dict[str, Any], key: str, low: int, high: int, where: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConversionError(
            f"{where}: {key} must be an integer in [{low}, {high}], got {value!r}"
        )
    return value


def is_bert(config: dict[str, Any]) -> bool:
    """Whether ``config`` (a parsed ``config.json``) describes a supported BERT model."""
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures:
        return all(a in ARCHITECTURES for a in architectures)
    return config.get("model_type") in MODEL_TYPES


def _source_name(name: str) -> str:
    """A checkpoint tensor name without the variants some exports use."""
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[:-6] + ".weight"
    elif name.endswith(".beta"):
        name = name[:-5] + ".bias"
    return name


@dataclass
class Vocabulary:
    """A WordPiece vocabulary in llama.cpp's form."""

    tokens: list[str]
    types: list[int]
    special: dict[str, int] = field(default_factory=dict)
    lowercase: bool = True
    strip_accents: bool | None = None


def _wordpiece(folder: Path, n_vocab: int) -> Vocabulary:
    tokenizer = read_json(folder / "tokenizer.json", required=False)
    tok_config = read_json(folder / "tokenizer_config.json", required=False) or {}
    by_id: dict[int, str] = {}
    control: set[int] = set()
    lowercase = bool(tok_config.get("do_lower_case", True))
    strip_accents = tok_config.get("strip_accents")
    if tokenizer is not None:
        model = tokenizer.get("model")
        if not isinstance(model, dict) or model.get("type") != "WordPiece":
            kind = model.get("type") if isinstance(model, dict) else None
            raise ConversionError(
                f"{folder}/tokenizer.json: a {kind!r} tokenizer; BERT models need WordPiece"
            )
        vocab = model.get("vocab")
        if not isinstance(vocab, dict):
            raise ConversionError(f"{folder}/tokenizer.json: model.vocab must be an object")
        for text, tid in vocab.items():
            if not isinstance(tid, int) or isinstance(tid, bool):
                raise ConversionError(f"{folder}/tokenizer.json: token {text!r} has id {tid!r}")
            by_id[tid] = text
        for added in tokenizer.get("added_tokens") or []:
            if isinstance(added, dict) and isinstance(added.get("id"), int):
                by_id[added["id"]] = str(added.get("content", ""))
                if added.get("special"):
                    control.add(added["id"])
        normalizer = tokenizer.get("normalizer")
        steps = normalizer.get("normalizers", []) if isinstance(normalizer, dict) else []
        for step in [normalizer, *steps]:
            if not isinstance(step, dict):
                continue
            if step.get("type") == "BertNormalizer":
                lowercase = bool(step.get("lowercase", True))
                strip_accents = step.get("strip_accents")
            elif step.get("type") == "Lowercase":
                lowercase = True
    elif (folder / "vocab.txt").is_file():
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        by_id = dict(enumerate(lines))
    else:
        raise ConversionError(f"{folder}: no tokenizer.json or vocab.txt (the vocabulary)")
    if not by_id or min(by_id) < 0 or max(by_id) >= n_vocab:
        top = max(by_id) if by_id else None
        raise ConversionError(
            f"{folder}: token ids must be in [0, {n_vocab}) (vocab_size), the largest is {top}"
        )
    for key in _SPECIAL:
        text = tok_config.get(f"{key}_token")
        if isinstance(text, dict):
            text = text.get("content")
        ids = [tid for tid, t in by_id.items() if t == text] if isinstance(text, str) else []
        if ids:
            control.add(ids[0])
    tokens: list[str] = []
    types: list[int] = []
    ids_of: dict[str, int] = {}
    for tid in range(n_vocab):
        text = by_id.get(tid)
        if text is None:
            tokens.append(f"[PAD{tid}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        ids_of.setdefault(text, tid)
        if tid in control:
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(text[2:] if text.startswith("##") else "\u2581" + text)
            types.append(gguf.TokenType.NORMAL)
    special: dict[str, int] = {}
    defaults = {"unk": "[UNK]", "sep": "[SEP]", "pad": "[PAD]", "cls": "[CLS]", "mask": "[MASK]"}
    for key in _SPECIAL:
        text = tok_config.get(f"{key}_token", defaults[key])
        if isinstance(text, dict):
            text = text.get("content")
        if isinstance(text, str) and text in ids_of:
            special[key] = ids_of[text]
    for needed in ("cls", "sep", "unk"):
        if needed not in special:
            raise ConversionError(f"{folder}: the vocabulary has no {needed} token")
    # as llama.cpp's SpecialVocab: BOS is the CLS token and EOS the SEP token
    special["bos"] = special["cls"]
    special["eos"] = special["sep"]
    return Vocabulary(
        tokens=tokens,
        types=types,
        special=special,
        lowercase=lowercase,
        strip_accents=strip_accents if isinstance(strip_accents, bool) else None,
    )


def _pooling(folder: Path) -> int | None:
    """The sentence-transformers pooling of the model, if it declares one."""
    modules = folder / "modules.json"
    entries = read_json(modules, required=False, kind=list)
    for module in entries or []:
        if not isinstance(module, dict) or not str(module.get("type", "")).endswith("Pooling"):
            continue
        sub = str(module.get("path", ""))
        if sub.startswith(("/", "\\")) or ".." in Path(sub).parts:
            raise ConversionError(f"{modules}: the pooling path {sub!r} leaves the directory")
        config = read_json(folder / sub / "config.json") or {}
        if config.get("pooling_mode_mean_tokens"):
            return int(gguf.PoolingType.MEAN)
        if config.get("pooling_mode_cls_token"):
            return int(gguf.PoolingType.CLS)
        if config.get("pooling_mode_lasttoken"):
            return int(gguf.PoolingType.LAST)
        if (mode := config.get("pooling_mode")) in _POOLING:
            return int(_POOLING[mode])
        raise ConversionError(
            f"{folder / sub}/config.json: unsupported pooling (supported: mean, cls, last token)"
        )
    return None


@dataclass
class BertPlan:
    """What one BERT checkpoint becomes: hyperparameters, vocabulary and tensor names."""

    folder: Path
    name: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_ctx: int
    n_vocab: int
    n_token_types: int
    eps: float
    pooling: int | None
    vocab: Vocabulary
    tensors: list[tuple[str, str]]
    """``(gguf name, checkpoint name)`` in writing order."""

    def add_metadata(self, writer: gguf.GGUFWriter) -> None:
        """Write the hyperparameters and the vocabulary."""
        writer.add_name(self.name)
        writer.add_block_count(self.n_layer)
        writer.add_context_length(self.n_ctx)
        writer.add_embedding_length(self.n_embd)
        writer.add_feed_forward_length(self.n_ff)
        writer.add_head_count(self.n_head)
        writer.add_layer_norm_eps(self.eps)
        writer.add_causal_attention(False)
        if self.pooling is not None:
            writer.add_pooling_type(gguf.PoolingType(self.pooling))
        writer.add_token_type_count(self.n_token_types)
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")  # llama.cpp gives WordPiece no pre-tokenizer
        writer.add_token_list(self.vocab.tokens)
        writer.add_token_types(self.vocab.types)
        for key, tid in sorted(self.vocab.special.items()):
            writer.add_uint32(_SPECIAL_KEYS[key], tid)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(True)
        # llama.cpp reads these BertNormalizer options (older gguf packages lack helpers)
        writer.add_bool("tokenizer.ggml.normalizer.lowercase", self.vocab.lowercase)
        if self.vocab.strip_accents is not None:
            writer.add_bool("tokenizer.ggml.normalizer.strip_accents", self.vocab.strip_accents)


def plan(
    folder: Path, config: dict[str, Any], weights: Weights, *, name: str | None = None
) -> BertPlan:
    """Check a BERT checkpoint against its config and map its tensors; no data is read.

    ``name`` is the model's ``general.name`` (default: the directory's name).
    """
    where = folder / "config.json"
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConversionError(f"{where}: hidden_act {act!r} is not supported (llama.cpp: gelu)")
    position = config.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ConversionError(
            f"{where}: position_embedding_type {position!r} is not supported (absolute only)"
        )
    n_layer = _int(config, "num_hidden_layers", 1, _MAX_LAYERS, where)
    n_embd = _int(config, "hidden_size", 1, _MAX_DIM, where)
    n_head = _int(config, "num_attention_heads", 1, n_embd, where)
    if n_embd % n_head:
        raise ConversionError(f"{where}: hidden_size {n_embd} is not a multiple of {n_head} heads")
    n_ff = _int(config, "intermediate_size", 1, 16 * _MAX_DIM, where)
    n_ctx = _int(config, "max_position_embeddings", 1, _MAX_POSITIONS, where)
    n_vocab = _int(config, "vocab_size", 1, _MAX_VOCAB, where)
    n_types = _int({"t": config.get("type_vocab_size", 2)}, "t", 1, 1024, where)
    eps = config.get("layer_norm_eps", 1e-12)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
        raise ConversionError(f"{where}: layer_norm_eps must be a small positive number")

    expected: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (n_vocab, n_embd),
        "token_types.weight": (n_types, n_embd),
        "position_embd.weight": (n_ctx, n_embd),
        "token_embd_norm.weight": (n_embd,),
        "token_embd_norm.bias": (n_embd,),
    }
    square = {"attn_q", "attn_k", "attn_v", "attn_output"}
    for i in range(n_layer):
        for short in _LAYER_TENSORS.values():
            if short in square:
                w: tuple[int, ...] = (n_embd, n_embd)
                b: tuple[int, ...] = (n_embd,)
            elif short == "ffn_up":
                w, b = (n_ff, n_embd), (n_ff,)
            elif short == "ffn_down":
                w, b = (n_embd, n_ff), (n_embd,)
            else:
                w, b = (n_embd,), (n_embd,)
            expected[f"blk.{i}.{short}.weight"] = w
            expected[f"blk.{i}.{short}.bias"] = b

    found: dict[str, str] = {}
    for source in weights.names():
        clean = _source_name(source)
        if _DROPPED.fullmatch(clean):
            continue
        target: str | None = None
        if m := _LAYER.fullmatch(clean):
            if layer_part := _LAYER_TENSORS.get(m.group(2)):
                target = f"blk.{int(m.group(1))}.{layer_part}.{m.group(3)}"
        elif (m := _TOP.fullmatch(clean)) and (top_part := _TOP_TENSORS.get(m.group(1))):
            target = f"{top_part}.{m.group(2)}"
        if target is None or target not in expected:
            raise ConversionError(
                f"{folder}: unexpected tensor {source!r} for a {n_layer}-layer BERT"
            )
        if target in found:
            raise ConversionError(f"{folder}: tensors {found[target]!r} and {source!r} clash")
        shape = weights.shape(source)
        if shape != expected[target]:
            raise ConversionError(
                f"{folder}: tensor {source!r} has shape {list(shape)}, "
                f"config.json implies {list(expected[target])}"
            )
        found[target] = source
    missing = [t for t in expected if t not in found]
    if missing:
        raise ConversionError(
            f"{folder}: {len(missing)} tensor(s) missing, e.g. {missing[0]} "
            "(is this the full model?)"
        )
    return BertPlan(
        folder=folder,
        name=name or folder.resolve().name,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=n_ff,
        n_head=n_head,
        n_ctx=n_ctx,
        n_vocab=n_vocab,
        n_token_types=n_types,
        eps=float(eps),
        pooling=_pooling(folder),
        vocab=_wordpiece(folder, n_vocab),
        tensors=[(t, found[t]) for t in expected],
    )
