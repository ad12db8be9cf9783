"""Convert a llama-architecture GGUF (quantized or not) into an mlx-lm model directory in float32."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlx.core as mx
from tqdm import tqdm

log = logging.getLogger(__name__)

# GGUF tensor names -> Hugging Face llama names (per block, then global).
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
SPECIAL_TOKEN_TYPE = 3


def convert(gguf: Path, out: Path) -> None:
    """Write config.json, model.safetensors and tokenizer files for `gguf` into `out`."""
    tensors, meta = mx.load(str(gguf), return_metadata=True)
    config = llama_config(meta)
    weights = {}
    names = sorted({k.rsplit(".", 1)[0] for k in tensors})
    for name in tqdm(names, desc="dequantize", unit="tensor", leave=False):
        weights[hf_name(name) + ".weight"] = dequantized(tensors, name, config)
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_tokenizer(meta, out)
    log.info("converted %s: %d tensors, %d layers", gguf.name, len(weights), config["num_hidden_layers"])


def hf_name(gguf_name: str) -> str:
    """'blk.3.attn_q.weight' -> 'model.layers.3.self_attn.q_proj' (suffix stripped)."""
    parts = gguf_name.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{_BLOCK_NAMES[parts[2]]}"
    return _GLOBAL_NAMES[parts[0]]


def dequantized(tensors: dict, name: str, config: dict) -> mx.array:
    """Float32 weight for `name` ('blk.0.attn_q.weight' without suffix handled by caller)."""
    base = name[: -len(".weight")] if name.endswith(".weight") else name
    weight = tensors[base + ".weight"]
    if base + ".scales" in tensors:
        scales, biases = tensors[base + ".scales"], tensors[base + ".biases"]
        bits = (32 * weight.shape[-1]) // (32 * scales.shape[-1])
        weight = mx.dequantize(weight, scales, biases, group_size=32, bits=bits)
    weight = weight.astype(mx.float32)
    if base.endswith("attn_q"):
        weight = unpermute_rows(weight, config["num_attention_heads"])
    elif base.endswith("attn_k"):
        weight = unpermute_rows(weight, config["num_key_value_heads"])
    mx.eval(weight)
    return weight


def unpermute_rows(weight: mx.array, n_heads: int) -> mx.array:
    """Undo llama.cpp's rope permutation of Q/K rows, back to the Hugging Face layout."""
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.reshape(n_heads, head_dim // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def _scalar(meta: dict, key: str):
    value = meta[key]
    return value.item() if hasattr(value, "item") else value


def llama_config(meta: dict) -> dict:
    """A Hugging Face style llama config.json from GGUF metadata."""
    if _scalar(meta, "general.architecture") != "llama":
        raise ValueError("only llama-architecture GGUF files are supported")
    hidden = int(_scalar(meta, "llama.embedding_length"))
    heads = int(_scalar(meta, "llama.attention.head_count"))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": int(_scalar(meta, "llama.block_count")),
        "intermediate_size": int(_scalar(meta, "llama.feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(_scalar(meta, "llama.attention.head_count_kv")),
        "head_dim": hidden // heads,
        "rms_norm_eps": float(_scalar(meta, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_scalar(meta, "llama.rope.freq_base")),
        "vocab_size": int(_scalar(meta, "llama.vocab_size")),
        "max_position_embeddings": int(_scalar(meta, "llama.context_length")),
        "tie_word_embeddings": True,
        "bos_token_id": int(_scalar(meta, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(_scalar(meta, "tokenizer.ggml.eos_token_id")),
        "torch_dtype": "float32",
    }


def write_tokenizer(meta: dict, out: Path) -> None:
    """tokenizer.json (byte-level BPE), tokenizer_config.json with the chat template, special_tokens_map.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tokens = list(meta["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    types = meta["tokenizer.ggml.token_type"].tolist()
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = [tokens[i] for i, t in enumerate(types) if t == SPECIAL_TOKEN_TYPE]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.save(str(out / "tokenizer.json"))

    bos = tokens[int(_scalar(meta, "tokenizer.ggml.bos_token_id"))]
    eos = tokens[int(_scalar(meta, "tokenizer.ggml.eos_token_id"))]
    unk = tokens[int(_scalar(meta, "tokenizer.ggml.unknown_token_id"))]
    pad = tokens[int(_scalar(meta, "tokenizer.ggml.padding_token_id"))]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": unk,
        "pad_token": pad,
        "additional_special_tokens": [s for s in specials if s not in {bos, eos, unk, pad}],
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(_scalar(meta, "llama.context_length")),
        "chat_template": _scalar(meta, "tokenizer.chat_template"),
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special_map = {
        k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token", "additional_special_tokens")
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, ensure_ascii=False) + "\n")
