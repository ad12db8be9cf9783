"""The learning-rate schedule, and re-planning its end when the time cap would cut the run short.

A run cut by `max_seconds` stops part-way through its cosine decay and keeps the best checkpoint so far; on a machine
twice as slow as ours the default run would stop at step ~342 of 690 with the rate still at 58% of its peak. With
`fit_schedule`, once the steps left will not fit the time left, the schedule's end moves to the step that fits and
the decay continues from where it is to its floor there. On a machine fast enough for the whole plan nothing is
re-planned, and the rates are exactly those of the fixed schedule (the same mlx-lm schedule functions). It is off by
default: it takes a slow machine off the shipped run's exact path, and the one run we measured with it scored lower
than the cut schedule's checkpoint (README, run 43).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

CHECK_EVERY = 10  # steps between checks of the time left; cheap, and enough to follow a machine's speed
# The measure of a machine's speed leaves out a process's first steps, which run 25-35% slower per token than the
# run's mean (allocator warm-up: on the default run, the first 20), and needs this many steps after them before the
# first check: steps 20-80 of two default runs came within 1% of their run's mean, steps 20-110 within 4%.
UNMEASURED_STEPS = 20
MIN_STEPS_MEASURED = 60
# A validation before one has been timed: its tokens at this share of a training step's time per token (forward only:
# 30 block passes against a step's ~42, the trained blocks' backward counting 1.5 forwards; the default run's first
# validation took 0.75 of the estimate from its tokens, later ones less, their frozen blocks cached).
VALIDATION_SHARE = 0.75
# Re-plan only when the cap would cut more than this share of the steps left: the last few percent of a cosine decay
# run at its floor (at 95% of the decay the rate is within 0.6% of it), so losing them costs nothing, and a run that
# nearly fits keeps the fixed schedule exactly (the stop rule in train.py ends it).
TOLERANCE = 0.05


class Schedule:
    """Linear warm-up from lr/10, then cosine decay to `min_lr_ratio` x lr at step `end`.

    `replan(step, end)` moves the end; the decay position then runs linearly from where it is at `step` to the full
    decay at the new end, so the rate is continuous and still reaches its floor.
    """

    def __init__(self, learning_rate: float, warmup: int, iters: int, min_lr_ratio: float):
        self.warmup, self.iters = warmup, iters
        self.decay_steps = max(iters - warmup, 1)
        self._decay = optim.cosine_decay(learning_rate, self.decay_steps, learning_rate * min_lr_ratio)
        self._fixed = self._decay
        if warmup:
            warm = optim.linear_schedule(learning_rate / 10, learning_rate, warmup)
            self._fixed = optim.join_schedules([warm, self._decay], [warmup])
        self.end = iters
        self.anchor: tuple[int, float] | None = None  # (step, decay position there) of the last re-plan

    def __call__(self, step: int) -> mx.array:
        """The rate for the update that follows `step` completed steps (what mlx's scheduled optimizers use)."""
        if self.anchor is None or step < self.anchor[0]:
            return self._fixed(mx.array(step, dtype=mx.uint64))
        return self._decay(mx.array(min(self.decay_position(step), self.decay_steps), dtype=mx.float32))

    def decay_position(self, step: int) -> float:
        if self.anchor is None or step < self.anchor[0]:
            return float(max(step - self.warmup, 0))
        start, position = self.anchor
        return position + (step - start) * (self.decay_steps - position) / max(self.end - start, 1)

    def replan(self, step: int, end: int) -> None:
        """End the decay at `end` (> step) instead, continuing from the rate at `step`."""
        if end <= step:
            raise ValueError(f"the schedule's new end ({end}) must come after the current step ({step})")
        self.anchor = (step, self.decay_position(step))
        self.end = end

    def state(self) -> dict:
        return {"iters": self.iters, "end": self.end, "anchor": list(self.anchor) if self.anchor else None}

    def load(self, state: dict | None) -> None:
        """Continue a checkpoint's re-plan; a resume with other `iters` starts from the new fixed schedule instead."""
        if state and state.get("anchor") and state.get("iters") == self.iters:
            self.end = int(state["end"])
            self.anchor = (int(state["anchor"][0]), float(state["anchor"][1]))


def steps_that_fit(
    step: int, limit: int, step_cost: np.ndarray, rate: float, eval_every: int, eval_seconds: float,
    seconds_left: float,
) -> int:  # fmt: skip
    """The last step (at most `limit`) whose run from `step` fits `seconds_left`, with validations; at least step+1.

    step_cost[s] is step s's padded tokens and `rate` the seconds per such token; a validation costs `eval_seconds`,
    at every multiple of `eval_every` and at the end.
    """
    seconds = np.cumsum(step_cost[step:limit], dtype=np.float64) * rate  # to finish step s+1, for s >= step
    ends = np.arange(step + 1, limit + 1)
    evals = ends // eval_every - step // eval_every + (ends % eval_every != 0)  # the closing one too
    fits = np.nonzero(seconds + evals * eval_seconds <= seconds_left)[0]  # a prefix: both terms only grow
    return int(ends[fits[-1]]) if len(fits) else step + 1


def replanned_end(schedule: Schedule, step: int, fitting: int) -> int | None:
    """The schedule's new end given the last step that fits, or None to keep it.

    A plan that fits, or nearly (within TOLERANCE of the steps left), is not touched, so a fast enough machine trains
    exactly the fixed schedule; once shortened, the end moves back out (up to the configured steps) when the machine
    turns out faster by more than that much, so that it does not jitter.
    """
    margin = max(CHECK_EVERY, TOLERANCE * (schedule.end - step))
    if fitting < schedule.end - margin:
        return fitting
    if schedule.anchor is not None and fitting > schedule.end + margin and schedule.end < schedule.iters:
        return min(fitting, schedule.iters)
    return None
