"""`calibrate`: choose the decision threshold on the validation split and store it beside the model.

    python -m evalharness calibrate --model model/fused [--adapters DIR] [--data FILE] [--max-fpr 0.02]

Scores the data (default data/processed/valid.parquet, never the test split) with `python -m serve` at its raw
scores, takes the lowest threshold whose FPR there is at most `max_fpr` (the most recall that false-alarm budget
allows; never below 0.5, so calibration only ever trades recall for fewer false alarms) and writes calibration.json
into the adapters dir when given, else the model dir. serve and eval then use that threshold unless told otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from common.calibration import DEFAULT_THRESHOLD, write_calibration
from evalharness.data import ROOT, read_labelled, resolve_contract
from evalharness.metrics import binary_metrics, join_predictions, threshold_for_fpr

log = logging.getLogger(__name__)
VALID = ROOT / "data/processed/valid.parquet"


@dataclass(frozen=True)
class CalibrationRun:
    model: str
    adapters: str | None = None
    data: str | None = None  # default data/processed/valid.parquet
    max_fpr: float = 0.02


def run_calibration(run: CalibrationRun) -> dict:
    """Score the validation rows, choose the threshold, write calibration.json; returns its content."""
    from evalharness.evaluate import EvalRun, score_with_serve

    if not 0.0 <= run.max_fpr < 1.0:
        raise ValueError(f"--max-fpr must be within [0, 1), not {run.max_fpr}")
    contract = resolve_contract(run.model, run.adapters, None)
    data = str(run.data or VALID)
    rows = read_labelled(data, contract.labels)
    scored = join_predictions(rows, score_with_serve(EvalRun(run.model, run.adapters), rows), by="id")
    labels, scores = [r["label"] for r in scored], [r["score"] for r in scored]
    chosen = threshold_for_fpr(labels, scores, run.max_fpr)
    threshold = max(DEFAULT_THRESHOLD, chosen["threshold"] if chosen["threshold"] is not None else 1.0)
    at = binary_metrics(labels, [int(s >= threshold) for s in scores])
    at_default = binary_metrics(labels, [int(s >= DEFAULT_THRESHOLD) for s in scores])
    record = {
        "threshold": round(threshold, 6),
        "max_fpr": run.max_fpr,
        "data": data,
        "rows": len(scored),
        "at_threshold": {k: at[k] for k in ("fpr", "recall", "precision", "f1", "accuracy")},
        "at_0.5": {k: at_default[k] for k in ("fpr", "recall", "precision", "f1", "accuracy")},
    }
    path = write_calibration(Path(run.adapters or run.model), record)
    log.info("calibration: threshold %.4f (valid FPR %.4f, recall %.4f; at 0.5: FPR %.4f, recall %.4f) -> %s",
             threshold, at["fpr"], at["recall"], at_default["fpr"], at_default["recall"], path)  # fmt: skip
    return record
