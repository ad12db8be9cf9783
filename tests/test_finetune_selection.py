"""Which validated weights training keeps: the newest unless an earlier checkpoint is measurably better."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finetune.selection import is_better, keeps_newer, paired_gap

ROOT = Path(__file__).resolve().parent.parent


def result(loss: float, accuracy: float = 0.9) -> dict:
    return {"val_loss": loss, "val_accuracy": accuracy}


def test_a_gap_inside_the_noise_keeps_the_newer_weights():
    """The fresh clone's case: steps 460 and 630 differed by a tenth of a standard error; the later one is kept."""
    rng = np.random.default_rng(0)
    kept_rows = rng.exponential(0.04, 256)
    noise = rng.normal(0, 0.05, 256)
    newer_rows = kept_rows + noise - noise.mean() + 0.0003  # worse on average by 0.0003, far inside the noise
    gap, error = paired_gap(newer_rows, kept_rows)
    assert 0 < gap < error
    newer, kept = result(newer_rows.mean()), result(kept_rows.mean())
    assert keeps_newer(newer, newer_rows, kept, kept_rows, "loss", 2.0)
    assert not keeps_newer(newer, newer_rows, kept, kept_rows, "loss", 0.0)  # 0: the strictly lowest loss


def test_a_clearly_worse_validation_keeps_the_earlier_weights():
    kept_rows = np.linspace(0.01, 0.1, 256)
    newer_rows = kept_rows + 0.02 + 0.001 * np.sin(np.arange(256))  # worse on every row
    assert not keeps_newer(result(newer_rows.mean()), newer_rows, result(kept_rows.mean()), kept_rows, "loss", 2.0)
    better_rows = kept_rows - 0.02
    assert keeps_newer(result(better_rows.mean()), better_rows, result(kept_rows.mean()), kept_rows, "loss", 2.0)


def test_accuracy_selection_and_old_checkpoints_use_the_plain_comparison():
    rows = np.ones(4)
    assert keeps_newer(result(0.5), rows, None, None, "loss", 2.0)  # the first validation is always kept
    assert not keeps_newer(result(0.2, 0.8), rows, result(0.3, 0.9), rows * 2, "accuracy", 2.0)
    assert keeps_newer(result(0.2, 0.9), rows, result(0.3, 0.9), rows * 2, "accuracy", 2.0)  # loss breaks the tie
    # a checkpoint saved before per-row losses existed: the strictly lower loss, as then
    assert not keeps_newer(result(0.31), rows, result(0.3), None, "loss", 2.0)
    assert is_better(result(0.29), result(0.3), "loss")


@pytest.mark.parametrize("margin", [0.0, 1e9])
def test_training_keeps_what_the_margin_says(tiny_model_dir, tmp_path, margin):
    """margin 0: the lowest validation loss; a huge margin: always the newest. The kept adapters are those weights."""
    import mlx.core as mx

    from common.config import resolve_config
    from finetune.config import TrainConfig
    from finetune.train import run_training
    from tests.test_finetune_train import make_data, metrics

    data = make_data(tmp_path / "data")
    adapters = tmp_path / "adapters"
    overrides = dict(model=str(tiny_model_dir), data=data, adapters=adapters, iters=12, batch_size=8,
                     learning_rate=3e-2, rank=8, layers=1, eval_every=4, eval_samples=16, warmup=2,
                     encoded_copies=0, select_margin=margin)  # fmt: skip
    summary = run_training(resolve_config(TrainConfig, ROOT / "finetune/default.yaml", overrides))
    evals = [r for r in metrics(adapters) if "val_loss" in r]
    lowest = min(evals, key=lambda r: r["val_loss"])
    assert summary["best_step"] == (lowest["step"] if margin == 0 else 12)
    state = json.loads((adapters / "checkpoint/state.json").read_text())
    assert len(state["best_rows"]) == 16 and state["lowest"]["val_loss"] == lowest["val_loss"]
    if margin:  # the newest weights are the checkpoint's
        kept = mx.load(str(adapters / "adapters.safetensors"))
        last = mx.load(str(adapters / "checkpoint/lora.safetensors"))
        assert all(mx.array_equal(kept[k], last[k]).item() for k in last)


def test_a_negative_margin_is_a_config_error():
    from finetune.config import TrainConfig

    with pytest.raises(ValueError, match="select_margin must be 0"):
        TrainConfig(select_margin=-1)
