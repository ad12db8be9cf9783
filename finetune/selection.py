"""Which validated weights to keep: the newest, unless an earlier checkpoint is measurably better.

Late in the decay two checkpoints differ on the 256-row validation sample by far less than that sample can tell
apart: the fresh clone's steps 460 and 630 differed by 0.0003 per answer token with a paired standard error of
0.0033 (README, "invoke train"). Keeping the strictly lowest loss then picks by noise, and throws away the steps
of decay that came after. So, with `select_by: loss` and `select_margin` > 0, a new validation replaces the kept
weights unless its mean loss is higher by more than `select_margin` standard errors of the per-row difference
(paired: the same rows, so row difficulty cancels). `select_margin: 0` keeps the strictly lowest loss.

    keep = keeps_newer(result, rows, kept, kept_rows, config.select_by, config.select_margin)
"""

from __future__ import annotations

import math

import numpy as np


def is_better(result: dict, best: dict | None, select_by: str) -> bool:
    """Lower loss (or higher accuracy, loss breaking ties) than the best so far."""
    if best is None:
        return True
    if select_by == "accuracy":
        key = (result["val_accuracy"], -result["val_loss"])
        return key > (best["val_accuracy"], -best["val_loss"])
    return result["val_loss"] < best["val_loss"]


def paired_gap(rows: np.ndarray, kept_rows: np.ndarray) -> tuple[float, float]:
    """Mean per-row loss difference (new - kept) and its standard error."""
    diff = np.asarray(rows, np.float64) - np.asarray(kept_rows, np.float64)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, math.inf
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))


def keeps_newer(result: dict, rows: np.ndarray, kept: dict | None, kept_rows, select_by: str, margin: float) -> bool:
    """Whether the new validation's weights replace the kept ones (see the module's docstring)."""
    if kept is None:
        return True
    if select_by != "loss" or margin <= 0 or kept_rows is None or len(kept_rows) != len(rows):
        return is_better(result, kept, select_by)  # a checkpoint from before per-row losses were saved, too
    gap, error = paired_gap(rows, kept_rows)
    return gap <= margin * error
