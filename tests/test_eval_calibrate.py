"""Threshold calibration on the validation split: chosen by `evalharness calibrate`, then used by serve and eval."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_eval_lm_eval import TEXTS

from common.calibration import CALIBRATION, DEFAULT_THRESHOLD, read_threshold, write_calibration
from common.contract import Contract, write_contract

ROOT = Path(__file__).resolve().parent.parent


def test_read_threshold_prefers_the_adapters_dir_and_rejects_bad_files(tmp_path):
    model, adapters = tmp_path / "model", tmp_path / "adapters"
    model.mkdir()
    adapters.mkdir()
    assert read_threshold(model) == (DEFAULT_THRESHOLD, "default")
    write_calibration(model, {"threshold": 0.61})
    assert read_threshold(model)[0] == 0.61
    assert read_threshold(model, adapters) == (DEFAULT_THRESHOLD, "default")  # the model dir's is for the fused model
    write_calibration(adapters, {"threshold": 0.7})
    assert read_threshold(model, adapters) == (0.7, str(adapters / CALIBRATION))
    (adapters / CALIBRATION).write_text('{"threshold": "high"}')
    with pytest.raises(ValueError, match="no valid 'threshold'.*invoke calibrate"):
        read_threshold(model, adapters)
    write_calibration(adapters, {"threshold": 1.5})
    with pytest.raises(ValueError, match="outside"):
        read_threshold(model, adapters)


def test_calibrate_then_serve_uses_the_threshold(tiny_model_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    write_contract(Contract(), model)
    data = tmp_path / "valid.parquet"
    cols = {"id": [f"v{i}" for i in range(len(TEXTS))], "text": [t for t, _, _ in TEXTS],
            "label": [y for _, y, _ in TEXTS], "source": [s for _, _, s in TEXTS]}  # fmt: skip
    pq.write_table(pa.table(cols), data)
    cmd = [sys.executable, "-m", "evalharness", "calibrate", "--model", str(model), "--data", str(data)]
    done = subprocess.run([*cmd, "--max-fpr", "0"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((model / CALIBRATION).read_text())
    assert record["rows"] == len(TEXTS) and record["max_fpr"] == 0
    assert record["threshold"] >= DEFAULT_THRESHOLD and record["at_threshold"]["fpr"] == 0.0

    lines = "".join(json.dumps({"text": t}) + "\n" for t, _, _ in TEXTS)
    served = subprocess.run([sys.executable, "-m", "serve", "--model", str(model)], input=lines, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert served.returncode == 0, served.stderr[-2000:]
    out = [json.loads(line) for line in served.stdout.splitlines()]
    assert [o["label"] == "unsafe" for o in out] == [o["score"] >= record["threshold"] for o in out]
    assert f"threshold {record['threshold']:.4f}" in served.stderr
    forced = subprocess.run([sys.executable, "-m", "serve", "--model", str(model), "--threshold", "0"], input=lines,
                            cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert {json.loads(line)["label"] for line in forced.stdout.splitlines()} == {"unsafe"}  # the flag wins
    bad = subprocess.run([*cmd, "--max-fpr", "1.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--max-fpr must be within" in bad.stderr and "Traceback" not in bad.stderr
