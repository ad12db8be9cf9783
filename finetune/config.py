"""TrainConfig: every knob of `python -m finetune train`, resolved as CLI > --config > finetune/default.yaml.

The dataclass defaults equal default.yaml (tested), so code that builds a TrainConfig trains what `invoke train` does.

from common.config import resolve_config
config = resolve_config(TrainConfig, ["finetune/default.yaml", "my.yaml"], {"iters": 100})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Fields that define the run: resuming with a different value would mix two trainings.
RUN_FIELDS = (
    "model",
    "data",
    "rank",
    "scale",
    "layers",
    "keys",
    "batch_size",
    "seed",
    "pool_batches",
    "balance_labels",
    "repeat",
    "encoded_copies",
)


@dataclass(frozen=True)
class TrainConfig:
    """LoRA training of the base model on the prepared splits (see finetune/default.yaml for the why of each)."""

    data: Path = Path("data/processed")
    model: str = "model/base"
    adapters: Path = Path("model/adapters")
    iters: int = 690
    batch_size: int = 16
    learning_rate: float = 3e-4
    warmup: int = 20
    min_lr_ratio: float = 0.1
    rank: int = 16
    scale: float = 20.0
    dropout: float = 0.0
    layers: int = 8
    keys: tuple[str, ...] = ()
    max_seconds: float = 2580.0
    fit_schedule: bool = False
    eval_every: int = 230
    eval_samples: int = 256
    eval_first: bool = False
    patience: int = 0
    select_by: str = "loss"
    select_margin: float = 2.0
    pool_batches: int = 32
    balance_labels: bool = False
    repeat: str = ""
    encoded_copies: int = 400
    compile: bool = False
    trunk_streams: int = 2
    trunk_cache_gb: float = 4.0
    ema: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("iters", "batch_size", "rank", "eval_every", "eval_samples", "pool_batches", "trunk_streams")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"train config: {name} must be at least 1, not {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"train config: learning_rate must be positive, not {self.learning_rate}")
        if self.layers == 0 or self.layers < -1:
            raise ValueError(f"train config: layers must be -1 (all) or at least 1, not {self.layers}")
        if self.select_by not in ("loss", "accuracy"):
            raise ValueError(f"train config: select_by must be 'loss' or 'accuracy', not {self.select_by!r}")
        if not self.select_margin >= 0:
            raise ValueError(
                f"train config: select_margin must be 0 (keep the lowest loss) or more, not {self.select_margin}"
            )
        if not 0 <= self.ema < 1:
            raise ValueError(f"train config: ema must be 0 (off) or a decay in (0, 1) such as 0.99, not {self.ema}")
        if not 0 <= self.min_lr_ratio <= 1 or self.warmup < 0 or self.patience < 0 or self.max_seconds < 0:
            raise ValueError("train config: min_lr_ratio in [0, 1]; warmup, patience, max_seconds >= 0")
        if self.trunk_cache_gb < 0:
            raise ValueError(f"train config: trunk_cache_gb must be 0 (off) or more, not {self.trunk_cache_gb}")
        if self.encoded_copies < 0:
            raise ValueError(f"train config: encoded_copies must be 0 (off) or more, not {self.encoded_copies}")
        from finetune.data import parse_repeat  # no MLX import: cheap

        parse_repeat(self.repeat)  # a malformed --repeat fails before the model loads
