"""The learning-rate schedule and its re-planning under the time cap (finetune/schedule.py)."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest

from finetune.schedule import CHECK_EVERY, Schedule, replanned_end, steps_that_fit

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("warmup", [0, 20])
def test_unplanned_schedule_is_mlx_schedule_exactly(warmup):
    """Without a re-plan the rates are bit for bit those mlx's scheduled Adam used before (so old runs repeat)."""
    lr, iters = 3e-4, 690
    decay = optim.cosine_decay(lr, max(iters - warmup, 1), lr * 0.1)
    fixed = optim.join_schedules([optim.linear_schedule(lr / 10, lr, warmup), decay], [warmup]) if warmup else decay
    schedule = Schedule(lr, warmup, iters, 0.1)
    for step in range(iters + 3):
        assert schedule(step).item() == fixed(mx.array(step, dtype=mx.uint64)).item()


def test_replan_is_continuous_and_still_reaches_the_floor():
    lr, floor = 3e-4, 3e-5
    schedule = Schedule(lr, 20, 690, 0.1)
    before = [schedule(s).item() for s in range(400)]
    schedule.replan(300, 500)
    after = [schedule(s).item() for s in range(700)]
    assert after[:301] == before[:301]  # the past and the re-plan step itself are unchanged
    assert after[300] > after[301] > after[400] > after[499] > after[500]
    assert after[500] == pytest.approx(floor) and after[650] == pytest.approx(floor)
    # a second re-plan (back out) continues from the rate where it is
    rate_at_450 = schedule(450).item()
    schedule.replan(450, 600)
    assert schedule(450).item() == pytest.approx(rate_at_450, rel=1e-6)
    assert schedule(600).item() == pytest.approx(floor) and schedule(599).item() > floor
    restored = Schedule(lr, 20, 690, 0.1)
    restored.load(json.loads(json.dumps(schedule.state())))  # through the checkpoint's JSON
    assert [restored(s).item() for s in range(0, 700, 7)] == [schedule(s).item() for s in range(0, 700, 7)]
    other = Schedule(lr, 20, 800, 0.1)
    other.load(schedule.state())  # resumed with other steps: the new fixed schedule, not the old re-plan
    assert other.anchor is None and other.end == 800
    with pytest.raises(ValueError, match="must come after"):
        schedule.replan(450, 450)


def test_steps_that_fit_counts_steps_and_validations():
    cost = np.ones(100)
    # 1 s per step, a validation (every 5 steps and at the end) 2 s, 20 s left: 14 steps + 3 validations = 20 s.
    assert steps_that_fit(0, 100, cost, 1.0, 5, 2.0, 20.0) == 14
    assert steps_that_fit(10, 100, cost, 1.0, 5, 2.0, 20.0) == 24
    assert steps_that_fit(0, 12, cost, 1.0, 5, 2.0, 1000.0) == 12  # never past the configured steps
    assert steps_that_fit(0, 100, cost, 1.0, 5, 2.0, 0.5) == 1  # nothing fits: one more step, the safety net stops it
    uneven = np.array([1.0, 1.0, 10.0, 1.0, 1.0])
    assert steps_that_fit(0, 5, uneven, 1.0, 100, 0.0, 11.9) == 2  # the long third batch does not fit


def test_replanned_end_leaves_a_plan_that_fits_alone():
    schedule = Schedule(3e-4, 20, 690, 0.1)
    assert replanned_end(schedule, 100, 690) is None  # fits: the fixed schedule, untouched
    assert replanned_end(schedule, 100, 670) is None  # nearly fits (cut 20 of 590 steps left): the stop rule's job
    assert replanned_end(schedule, 100, 600) == 600
    schedule.replan(100, 600)
    assert replanned_end(schedule, 500, 600 + CHECK_EVERY - 1) is None  # within a check's worth: no jitter
    assert replanned_end(schedule, 200, 640) == 640  # faster than feared: back out
    assert replanned_end(schedule, 200, 2000) == 690  # but never past the configured steps
    schedule.replan(200, 690)
    assert replanned_end(schedule, 300, 2000) is None


class SlowClock:
    """A stand-in for the `time` module whose clock advances a fixed tick per reading: a slow machine, exactly."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_time_cap_shortens_the_schedule_to_finish_its_decay(tiny_model_dir, tmp_path, monkeypatch):
    """Under a cap that cannot hold the planned steps, the run re-plans and ends with the rate at its floor."""
    from common.config import resolve_config
    from finetune import train
    from finetune.config import TrainConfig
    from tests.test_finetune_train import make_data

    monkeypatch.setattr(train, "time", SlowClock(0.05))  # ~0.15 s per step whatever this machine does
    monkeypatch.setattr(train, "MIN_STEPS_MEASURED", 10)  # the tiny model has no slow first steps to wait out
    data = make_data(tmp_path / "data")
    overrides = dict(model=str(tiny_model_dir), data=data, adapters=tmp_path / "capped", iters=3000, batch_size=8,
                     layers=1, learning_rate=1e-2, warmup=2, min_lr_ratio=0.1, eval_every=100000, eval_samples=16,
                     max_seconds=20, fit_schedule=True)  # fmt: skip
    summary = train.run_training(resolve_config(TrainConfig, ROOT / "finetune/default.yaml", overrides))
    assert summary["stop"] == "max_seconds" and summary["schedule_end"] < 3000
    # It ends by the plan, or by the stop rule a few steps before it: this clock gives every step the same time, where
    # the plan foresees time by each batch's padded tokens (as a real step costs).
    assert 0 <= summary["schedule_end"] - summary["steps"] <= 0.05 * summary["schedule_end"]
    rows = [json.loads(line) for line in (tmp_path / "capped/metrics.jsonl").read_text().splitlines()]
    rates = [r["lr"] for r in rows if "lr" in r]
    assert len(rates) == summary["steps"] and max(rates) == pytest.approx(1e-2)
    # The decay completed: the last update ran at its floor (1e-3), where the fixed 3000-step schedule is at ~1e-2.
    assert rates[-1] == pytest.approx(1e-3, rel=0.05)
    assert (np.diff(rates[2:]) <= 0).all()  # decays throughout after the warm-up
    state = json.loads((tmp_path / "capped/checkpoint/state.json").read_text())
    assert state["schedule"]["end"] == summary["schedule_end"] and state["schedule"]["anchor"] is not None
