"""Fuse trained LoRA adapters into the base model: an mlx-lm loadable float32 directory with the contract.

    python -m finetune fuse [--model model/base] [--adapters model/adapters] [--out model/fused] [--data data/processed]

Uses mlx-lm's own pieces (`load(..., adapter_path=)`, `LoRALinear.fuse`, `save`). The adapters' contract.json must
equal the data manifest's contract (when the manifest is there): a model trained under another prompt or label
words would be served with the wrong one.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from common.calibration import CALIBRATION
from common.config import read_json
from common.contract import CONTRACT_FILE, read_contract, write_contract
from common.model_dir import replaceable, replaced_when_done, require_model_dir

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class FuseConfig:
    """Where the base model, the adapters, the data manifest and the fused output are."""

    model: str | None = None  # None: the base recorded in the adapters' adapter_config.json, else model/base
    adapters: Path = Path("model/adapters")
    out: Path = Path("model/fused")
    data: Path | None = Path("data/processed")


def check_contract(adapters: Path, data: Path | None):
    """The adapters' contract, after checking it matches the data manifest's (a mismatch is an error)."""
    if not (adapters / CONTRACT_FILE).exists():
        raise ValueError(
            f"{adapters}: no {CONTRACT_FILE}; train with `invoke train` so the classifier contract is known"
        )
    contract = read_contract(adapters)
    if data is not None and (data / "manifest.json").exists():
        expected = read_contract(data)
        if expected != contract:
            diff = {k: (v, expected.to_dict()[k]) for k, v in contract.to_dict().items() if expected.to_dict()[k] != v}
            raise ValueError(
                f"contract mismatch between {adapters}/{CONTRACT_FILE} and {data}/manifest.json "
                f"(adapters, data): {diff}; retrain on this data or point --data at the data the adapters came from"
            )
    return contract


def recorded_base(adapters: Path) -> str:
    """The base model recorded in the adapters' adapter_config.json (relative to where training ran: this directory
    or the repository root), else model/base."""
    path = adapters / "adapter_config.json"
    data = read_json(path)
    recorded = data.get("model") if isinstance(data, dict) else None
    if not isinstance(recorded, str) or not recorded:
        return "model/base"
    for candidate in (Path(recorded), ROOT / recorded):
        if (candidate / "config.json").exists():
            return str(candidate)
    raise ValueError(f"{path}: the recorded base model {recorded!r} is not a model directory here; pass --model")


def fuse_adapters(config: FuseConfig) -> Path:
    """Write the fused float32 model directory and return it."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.utils import load, save

    adapters = Path(config.adapters)
    for name in ("adapter_config.json", "adapters.safetensors"):
        if not (adapters / name).exists():
            raise ValueError(f"{adapters}: missing {name}; run `invoke train` first")
    contract = check_contract(adapters, config.data)
    base = config.model or recorded_base(adapters)
    require_model_dir(base, "pass the base model the adapters were trained on with --model")
    replaceable(config.out)  # before the work: refuse early
    model, tokenizer, model_config = load(str(base), adapter_path=str(adapters), return_config=True)
    fused = [(name, module.fuse(dequantize=True)) for name, module in model.named_modules() if hasattr(module, "fuse")]
    if not fused:
        raise ValueError(f"{adapters}: the adapters added no LoRA layers to {base}")
    model.update_modules(tree_unflatten(fused))
    # float32: bf16/f16 do not go through the BLAS on the CPU (README, "Fast MLX on a Linux CPU").
    model.update(tree_unflatten([(k, v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())]))
    model_config.pop("quantization", None)
    model_config.pop("quantization_config", None)
    model_config["torch_dtype"] = "float32"
    out = Path(config.out)
    with replaced_when_done(out) as staging:  # the old fused model stays until the new one is complete
        save(staging, str(base), model, tokenizer, model_config, donate_model=False)
        write_contract(contract, staging)
        if (adapters / CALIBRATION).exists():  # the same function as base + adapters, so the same threshold
            shutil.copy2(adapters / CALIBRATION, staging / CALIBRATION)
    log.info("fused %d LoRA layers from %s into %s", len(fused), adapters, out)
    return out
