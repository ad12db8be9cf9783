"""Export an mlx-lm llama model directory (model/fused) to a GGUF for llama.cpp, plus an Ollama Modelfile.

    python -m finetune export-gguf --model model/fused --out model/gguf
    ollama create psc -f model/gguf/Modelfile && ollama run psc "How do I kill a Python process?"

Weights are written as float16 (norms stay float32), as llama.cpp's converter does with `--outtype f16`: half the size
of float32 and exact enough for the label (see `python -m finetune.gguf_check`). The tokenizer metadata is written
the way llama.cpp's converter writes it for SmolLM2 (`gpt2` byte-level BPE with the `smollm` pre-tokenizer, merges,
special tokens as CONTROL, chat template); mlx-lm's own `--export-gguf` labels this vocabulary as SentencePiece.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from common.contract import CONTRACT_FILE, Contract, read_contract
from finetune.gguf_convert import _BLOCK_NAMES, _GLOBAL_NAMES

log = logging.getLogger(__name__)

OUTTYPES = ("f16", "f32")
MODELFILE = "Modelfile"
# Go-template placeholders Ollama fills in; the system prompt comes from the Modelfile's SYSTEM line.
_SYSTEM_VAR = "{{ .System }}"
_PROMPT_VAR = "{{ .Prompt }}"
_SLOT = "\u2063PSC_GGUF_SLOT\u2063"

# Hugging Face name (without '.weight') -> GGUF name: the inverse of gguf_convert's import table.
_HF_TO_GGUF = {v: k for k, v in _GLOBAL_NAMES.items()}
_HF_BLOCK_TO_GGUF = {v: k for k, v in _BLOCK_NAMES.items()}
_HF_BLOCK = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def export_gguf(model_dir: Path, out_dir: Path, *, outtype: str = "f16", allow_default_contract: bool = False) -> Path:
    """Write `<name>.gguf` and an Ollama `Modelfile` for an mlx-lm llama directory into `out_dir`; return the GGUF."""
    import gguf

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype must be one of {', '.join(OUTTYPES)}, not {outtype!r}")
    contract = model_contract(model_dir, allow_default_contract)
    config = _read_json(model_dir / "config.json")
    if config.get("model_type") != "llama":
        raise ValueError(f"{model_dir}: model_type {config.get('model_type')!r}; only llama models export to GGUF here")
    vocab = read_vocab(model_dir)
    weights = load_weights(model_dir)

    out_dir.mkdir(parents=True, exist_ok=True)
    name = model_dir.resolve().name or "model"
    path = out_dir / f"{name}.{outtype}.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    write_model_metadata(writer, config, name, outtype)
    write_tokenizer_metadata(writer, vocab)
    for gguf_name, array in gguf_tensors(weights, config, outtype):
        writer.add_tensor(gguf_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()

    (out_dir / MODELFILE).write_text(modelfile_text(path.name, contract, ollama_template(model_dir, contract)))
    log.info(
        "wrote %s (%d tensors, %s, %.0f MB) and %s",
        path,
        len(weights),
        outtype,
        path.stat().st_size / 1e6,
        out_dir / MODELFILE,
    )
    return path


def model_contract(model_dir: Path, allow_default: bool) -> Contract:
    """The directory's contract; the default Contract() only when explicitly allowed (e.g. for model/base)."""
    if (model_dir / CONTRACT_FILE).exists() or (model_dir / "manifest.json").exists():
        return read_contract(model_dir)
    if not allow_default:
        raise ValueError(
            f"{model_dir}: no {CONTRACT_FILE}; export a fused model (`invoke fuse`) or pass --allow-default-contract "
            "to use the default contract (e.g. for model/base)"
        )
    log.warning("%s has no %s: using the default contract in the Modelfile", model_dir, CONTRACT_FILE)
    return Contract()


def load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """All tensors of `model*.safetensors` as numpy arrays with Hugging Face names."""
    from safetensors.numpy import load_file

    files = sorted(model_dir.glob("model*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir}: no model*.safetensors; pass an mlx-lm model directory (model/fused)")
    weights: dict[str, np.ndarray] = {}
    for file in files:
        weights.update(load_file(str(file)))
    quantized = [k for k in weights if k.endswith(".scales")]
    if quantized:
        raise ValueError(f"{model_dir}: quantized weights ({quantized[0]}); fuse with --dequantize first")
    return weights


def gguf_tensors(weights: dict[str, np.ndarray], config: dict, outtype: str):
    """Yield (gguf name, array) in GGUF layout: Q/K rows permuted for llama.cpp's rope, matrices in `outtype`."""
    for hf_name in sorted(weights, key=_layer_order):
        if not hf_name.endswith(".weight"):
            raise ValueError(f"unexpected tensor {hf_name}: only '.weight' tensors of a llama model are supported")
        base = hf_name[: -len(".weight")]
        if base == "lm_head" and config.get("tie_word_embeddings", False):
            continue  # tied: llama.cpp reuses token_embd
        array = weights[hf_name].astype(np.float32)
        if base.endswith("self_attn.q_proj"):
            array = permute_rows(array, config["num_attention_heads"])
        elif base.endswith("self_attn.k_proj"):
            array = permute_rows(array, config.get("num_key_value_heads", config["num_attention_heads"]))
        if outtype == "f16" and array.ndim == 2:
            array = array.astype(np.float16)  # norms (1-D) stay float32, as in llama.cpp's converter
        yield gguf_name(base) + ".weight", array


def gguf_name(hf_base: str) -> str:
    """'model.layers.3.self_attn.q_proj' -> 'blk.3.attn_q' (the '.weight' suffix is the caller's)."""
    if hf_base in _HF_TO_GGUF:
        return _HF_TO_GGUF[hf_base]
    match = _HF_BLOCK.match(hf_base)
    if match and match.group(2) in _HF_BLOCK_TO_GGUF:
        return f"blk.{match.group(1)}.{_HF_BLOCK_TO_GGUF[match.group(2)]}"
    raise ValueError(f"no GGUF name for tensor {hf_base!r} (not a plain llama weight)")


def _layer_order(hf_name: str) -> tuple[int, str]:
    match = _HF_BLOCK.match(hf_name)
    return (int(match.group(1)) if match else -1, hf_name)


def permute_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Hugging Face Q/K rows -> llama.cpp's rope layout; `gguf_convert.unpermute_rows` is the inverse."""
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.reshape(n_heads, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def write_model_metadata(writer, config: dict, name: str, outtype: str) -> None:
    """The llama.* hyperparameters llama.cpp reads."""
    import gguf

    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_name(name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    if config.get("rope_scaling"):
        raise ValueError("rope_scaling is not supported by this exporter")
    ftype = gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32
    writer.add_file_type(ftype)


def read_vocab(model_dir: Path) -> dict:
    """Tokens, token types, merges, special ids and chat template from tokenizer.json + tokenizer_config.json."""
    tok = _read_json(model_dir / "tokenizer.json")
    tok_config = _read_json(model_dir / "tokenizer_config.json")
    model = tok["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"{model_dir}: tokenizer model {model.get('type')!r}; only byte-level BPE is supported")
    vocab = dict(model["vocab"])
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    size = max(vocab.values()) + 1
    if sorted(vocab.values()) != list(range(size)):
        raise ValueError(f"{model_dir}: tokenizer ids are not contiguous 0..{size - 1}")
    tokens = [""] * size
    for text, index in vocab.items():
        tokens[index] = text
    special = {a["id"] for a in tok.get("added_tokens", []) if a.get("special")}
    user_defined = {a["id"] for a in tok.get("added_tokens", []) if not a.get("special")}
    # llama.cpp token types: 1 NORMAL, 3 CONTROL (special), 4 USER_DEFINED (added, not special).
    types = [3 if i in special else 4 if i in user_defined else 1 for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    # transformers >= 4.43 saves the template beside the config (chat_template.jinja), older ones inside it.
    jinja = Path(model_dir) / "chat_template.jinja"
    template = jinja.read_text() if jinja.exists() else tok_config.get("chat_template")
    if not template:
        raise ValueError(
            f"{model_dir}: no chat template (neither chat_template.jinja nor one in tokenizer_config.json)"
        )
    ids = {}
    for key in ("bos", "eos", "unk", "pad"):
        value = tok_config.get(f"{key}_token")
        value = value.get("content") if isinstance(value, dict) else value
        if value is not None:
            if value not in vocab:
                raise ValueError(f"{model_dir}: {key}_token {value!r} is not in the vocabulary")
            ids[key] = vocab[value]
    return {
        "tokens": tokens,
        "types": types,
        "merges": merges,
        "ids": ids,
        "add_bos": bool(tok_config.get("add_bos_token", False)),
        "chat_template": template,
        "pre": pretokenizer_name(tok.get("pre_tokenizer"), model_dir),
    }


def pretokenizer_name(pre: dict | None, model_dir: Path) -> str:
    """llama.cpp's pre-tokenizer id: SmolLM2's is single digits then GPT-2 byte-level, which llama.cpp calls 'smollm'."""
    parts = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else [pre] if pre else []
    shape = [(p.get("type"), p.get("individual_digits"), p.get("use_regex")) for p in parts]
    if shape == [("Digits", True, None), ("ByteLevel", None, True)]:
        return "smollm"
    raise ValueError(
        f"{model_dir}: pre-tokenizer {shape} has no known llama.cpp name here (only SmolLM2's 'smollm'); "
        "use llama.cpp's convert_hf_to_gguf.py for this model"
    )


def write_tokenizer_metadata(writer, vocab: dict) -> None:
    """tokenizer.ggml.* keys as llama.cpp's converter writes them for SmolLM2, plus the chat template."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab["pre"])
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    setters = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "unk": writer.add_unk_token_id,
        "pad": writer.add_pad_token_id,
    }
    for key, token_id in vocab["ids"].items():
        setters[key](token_id)
    writer.add_add_bos_token(vocab["add_bos"])
    writer.add_add_space_prefix(False)
    writer.add_chat_template(vocab["chat_template"])


def ollama_template(model_dir: Path, contract: Contract) -> str:
    """The contract's prompt as an Ollama Go template: the rendered prompt with {{ .System }} and {{ .Prompt }} slots."""
    from mlx_lm.utils import load_tokenizer

    rendered = contract.prompt_text(load_tokenizer(model_dir), _SLOT)
    if rendered.count(_SLOT) != 1 or rendered.count(contract.system_prompt) != 1:
        raise ValueError("the contract's prompt must contain the system prompt and the user's text exactly once")
    if "{{" in rendered or '"""' in rendered:
        raise ValueError("the rendered prompt contains '{{' or '\"\"\"', which an Ollama Modelfile cannot quote")
    return rendered.replace(contract.system_prompt, _SYSTEM_VAR).replace(_SLOT, _PROMPT_VAR)


def modelfile_text(gguf_file: str, contract: Contract, template: str) -> str:
    """An Ollama Modelfile: the GGUF, the contract's system prompt and template, greedy, label-only output."""
    if '"""' in contract.system_prompt:
        raise ValueError("the contract's system prompt contains '\"\"\"', which an Ollama Modelfile cannot quote")
    # Labels are one or two tokens ("safe" / "unsafe"); the answer's end-of-turn token stops earlier.
    return (
        f"# Prompt Safety Check: answers {contract.safe_label!r} or {contract.unsafe_label!r}.\n"
        f"# Contract version {contract.version}, format {contract.format}. Texts are not truncated here: send at most "
        f"about {contract.max_text_tokens} tokens.\n"
        f"FROM ./{gguf_file}\n"
        f'SYSTEM """{contract.system_prompt}"""\n'
        f'TEMPLATE """{template}"""\n'
        "PARAMETER temperature 0\n"
        "PARAMETER num_predict 2\n"
        'PARAMETER stop "<|im_end|>"\n'
    )


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise ValueError(f"{path} is missing; pass an mlx-lm model directory (config.json, tokenizer files, weights)")
    return json.loads(path.read_text())
