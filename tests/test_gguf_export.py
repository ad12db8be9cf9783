"""GGUF export of the tiny random model: metadata as llama.cpp expects it, tensors, Q/K round trip, Modelfile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from common.contract import Contract, write_contract  # noqa: E402
from finetune.gguf_export import MODELFILE, export_gguf  # noqa: E402

SYSTEM = "Test system prompt: label it."


@pytest.fixture(scope="module")
def fused_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A copy of the tiny model with a contract.json, shaped like model/fused."""
    out = tmp_path_factory.mktemp("fused") / "fused"
    shutil.copytree(tiny_model_dir, out)
    write_contract(Contract(system_prompt=SYSTEM), out)
    return out


@pytest.fixture(scope="module")
def exported(fused_dir, tmp_path_factory) -> tuple[Path, gguf.GGUFReader]:
    path = export_gguf(fused_dir, tmp_path_factory.mktemp("gguf"), outtype="f32")
    return path, gguf.GGUFReader(str(path))


def _field(reader, key):
    return reader.fields[key].contents()


def test_tokenizer_metadata_matches_llama_cpp_conventions(fused_dir, exported):
    _, reader = exported
    tok = json.loads((fused_dir / "tokenizer.json").read_text())
    tok_config = json.loads((fused_dir / "tokenizer_config.json").read_text())
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "smollm"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == 49152 and tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert len(_field(reader, "tokenizer.ggml.merges")) == len(tok["model"]["merges"]) == 48900
    types = _field(reader, "tokenizer.ggml.token_type")
    assert [i for i, t in enumerate(types) if t == 3] == list(range(17))  # the 17 special tokens are CONTROL
    assert set(types[17:]) == {1}
    assert _field(reader, "tokenizer.ggml.bos_token_id") == 1
    assert _field(reader, "tokenizer.ggml.eos_token_id") == 2
    assert _field(reader, "tokenizer.ggml.unknown_token_id") == 0
    assert _field(reader, "tokenizer.ggml.padding_token_id") == 2
    assert _field(reader, "tokenizer.ggml.add_bos_token") is False
    assert _field(reader, "tokenizer.chat_template") == tok_config["chat_template"]


def test_model_metadata_and_tensors(fused_dir, exported):
    from safetensors.numpy import load_file

    _, reader = exported
    config = json.loads((fused_dir / "config.json").read_text())
    assert _field(reader, "llama.block_count") == 2
    assert _field(reader, "llama.embedding_length") == 64
    assert _field(reader, "llama.attention.head_count") == 4
    assert _field(reader, "llama.attention.head_count_kv") == 2
    assert _field(reader, "llama.rope.dimension_count") == 16
    assert _field(reader, "llama.rope.freq_base") == pytest.approx(config["rope_theta"])
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors  # tied embeddings
    assert len(tensors) == 2 + 9 * 2  # token_embd and output_norm, then 9 tensors per block
    original = load_file(str(fused_dir / "model.safetensors"))
    assert tensors["token_embd.weight"].data.shape == original["model.embed_tokens.weight"].shape == (49152, 64)
    assert tensors["blk.1.attn_k.weight"].data.shape == (32, 64)
    assert tensors["blk.0.ffn_down.weight"].data.shape == (64, 128)
    np.testing.assert_array_equal(tensors["blk.1.ffn_up.weight"].data, original["model.layers.1.mlp.up_proj.weight"])


@pytest.mark.parametrize(("proj", "heads"), [("q", 4), ("k", 2)])
def test_qk_rows_round_trip_through_unpermute(fused_dir, exported, proj, heads):
    import mlx.core as mx
    from safetensors.numpy import load_file

    from finetune.gguf_convert import unpermute_rows

    _, reader = exported
    stored = next(t for t in reader.tensors if t.name == f"blk.0.attn_{proj}.weight").data
    original = load_file(str(fused_dir / "model.safetensors"))[f"model.layers.0.self_attn.{proj}_proj.weight"]
    assert not np.array_equal(stored, original)  # permuted for llama.cpp's rope
    np.testing.assert_array_equal(np.array(unpermute_rows(mx.array(np.asarray(stored)), heads)), original)


def test_modelfile_has_contract_system_prompt_and_chatml_template(fused_dir, exported):
    from mlx_lm.utils import load_tokenizer

    path, _ = exported
    text = (path.parent / MODELFILE).read_text()
    assert f"FROM ./{path.name}\n" in text
    assert f'SYSTEM """{SYSTEM}"""\n' in text
    assert "PARAMETER temperature 0\n" in text and "PARAMETER num_predict 2\n" in text
    assert 'PARAMETER stop "<|im_end|>"\n' in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert template == (
        "<|im_start|>system\n{{ .System }}<|im_end|>\n<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
    )
    # Filled in as Ollama would, it is exactly the contract's prompt.
    filled = template.replace("{{ .System }}", SYSTEM).replace("{{ .Prompt }}", "Hi there")
    assert filled == Contract(system_prompt=SYSTEM).prompt_text(load_tokenizer(fused_dir), "Hi there")


@pytest.mark.slow
def test_llama_cpp_agrees_with_mlx_on_the_tiny_model(fused_dir, exported):
    """Only where the optional extra gguf-check (llama-cpp-python) is installed; CI does not build it."""
    pytest.importorskip("llama_cpp")
    from finetune.gguf_check import check

    path, _ = exported
    result = check(fused_dir, path, n=5, threads=2, allow_default_contract=False)
    assert result["tokenization_equal"] == result["plain_tokenization_equal"] == 5
    assert result["label_agreement"] == 5
    assert result["p_unsafe_max_abs_diff"] < 1e-3  # float32 GGUF: only summation order differs
    assert result["passed"]


def test_f16_is_default_and_missing_contract_is_an_error(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="no contract.json"):
        export_gguf(tiny_model_dir, tmp_path / "a")
    path = export_gguf(tiny_model_dir, tmp_path / "b", allow_default_contract=True)
    assert path.name.endswith(".f16.gguf")
    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert Contract().system_prompt in (path.parent / MODELFILE).read_text()


def test_chat_template_saved_beside_the_config_is_exported(fused_dir, tmp_path):
    """`invoke fuse` (transformers >= 4.43) writes chat_template.jinja instead of a template in tokenizer_config.json."""
    moved = tmp_path / "fused"
    shutil.copytree(fused_dir, moved)
    tok_config = json.loads((moved / "tokenizer_config.json").read_text())
    template = tok_config.pop("chat_template")
    (moved / "tokenizer_config.json").write_text(json.dumps(tok_config))
    (moved / "chat_template.jinja").write_text(template)
    reader = gguf.GGUFReader(str(export_gguf(moved, tmp_path / "gguf", outtype="f32")))
    assert _field(reader, "tokenizer.chat_template") == template
