"""The decision threshold chosen for a trained model on its validation split, stored beside the model.

    threshold, source = read_threshold("model/fused")                 # 0.5 when the model was never calibrated
    threshold, source = read_threshold("model/base", "model/default")  # the adapters dir's calibration first

`python -m evalharness calibrate` writes `calibration.json`; serve and eval use its threshold unless one is given.
"""

from __future__ import annotations

import json
from pathlib import Path

CALIBRATION = "calibration.json"
DEFAULT_THRESHOLD = 0.5


def read_threshold(model_dir: str | Path, adapters: str | Path | None = None) -> tuple[float, str]:
    """(threshold, where it came from): calibration.json of the adapters dir when given, else of the model dir;
    0.5 without one (a fused model's calibration does not apply to base + some other adapters)."""
    path = Path(adapters if adapters is not None else model_dir) / CALIBRATION
    if not path.exists():
        return DEFAULT_THRESHOLD, "default"
    try:
        threshold = float(json.loads(path.read_text())["threshold"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: no valid 'threshold' ({exc}); rerun `invoke calibrate` or delete it") from None
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{path}: threshold {threshold} is outside [0, 1]; rerun `invoke calibrate`")
    return threshold, str(path)


def write_calibration(directory: str | Path, record: dict) -> Path:
    """calibration.json in `directory` (the record must hold 'threshold')."""
    path = Path(directory) / CALIBRATION
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
