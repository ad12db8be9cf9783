"""The pipeline summary reads the stages' files and says plainly what was not run."""

from __future__ import annotations

import json

from evalharness.summary import summary_rows, write_summary


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_summary_from_stage_files(tmp_path):
    _write(
        tmp_path / "data/processed/manifest.json",
        {"totals": {"train": 800, "valid": 100, "test": 100}, "class_balance": {"unsafe": {"share": 0.4}}},
    )
    _write(tmp_path / "model/adapters/train_summary.json", {"steps": 50, "seconds": 90, "tokens_per_second": 400.0})
    _write(
        tmp_path / "output/eval/test/metrics.json",
        {
            "f1": 0.98,
            "fpr": 0.02,
            "accuracy": 0.985,
            "roc_auc": 0.99,
            "by_source": {"project/safe_alarming": {"fpr": 0.05}},
            "lm_eval_check": {"equal": True, "lm_eval_accuracy": 0.985, "serve_accuracy": 0.985},
            "serve": {"texts": 1525, "seconds": 187.8, "texts_per_s": 8.12},
        },
    )
    rows = {what: measured for what, measured, _ in summary_rows(tmp_path)}
    assert rows["data rows (train/valid/test)"] == "800 / 100 / 100"
    assert rows["unsafe share"] == "40.0%"
    assert rows["training"] == "50 steps, 1.5 min, 400.0 tok/s"
    assert rows["test F1 (unsafe)"] == "0.9800"
    assert rows["safe-but-alarming FPR (test part)"] == "5.0%"
    assert rows["lm-eval acc vs serve acc"] == "0.9850 vs 0.9850 (equal)"
    assert rows["serve speed (eval on the test split, start-up included)"] == "8.1 texts/s (1,525 texts in 188 s)"
    assert "original's test split: accuracy" not in rows
    assert (tmp_path / "output/summary.md").exists() is False
    text = write_summary(tmp_path)
    assert (tmp_path / "output/summary.md").read_text() == text and "| test FPR | 2.0% |" in text


def test_summary_says_what_was_not_run(tmp_path):
    rows = {what: measured for what, measured, _ in summary_rows(tmp_path)}
    assert rows == {"data": "not run", "test metrics": "not run"}


def test_summary_training_row_names_copies_and_the_cap(tmp_path):
    train = {"steps": 673, "seconds": 2683.4, "tokens_per_second": 470.4, "stop": "max_seconds",
             "max_seconds": 2580.0, "train_examples": 12674, "encoded_copies": 400}  # fmt: skip
    _write(tmp_path / "model/adapters/train_summary.json", train)
    rows = {what: measured for what, measured, _ in summary_rows(tmp_path)}
    expected = "673 steps on 12,674 examples (400 encoded copies) (stopped by the 43-minute cap), 44.7 min, 470.4 tok/s"
    assert rows["training"] == expected
    _write(tmp_path / "model/adapters/train_summary.json", {**train, "iters": 690, "schedule_end": 676})
    rows = {what: measured for what, measured, _ in summary_rows(tmp_path)}
    assert "(400 encoded copies) (schedule fitted to the 43-minute cap), 44.7 min" in rows["training"]
    _write(tmp_path / "model/adapters/train_summary.json", {**train, "stop": "iters", "encoded_copies": 0})
    rows = {what: measured for what, measured, _ in summary_rows(tmp_path)}
    assert rows["training"] == "673 steps on 12,674 examples, 44.7 min, 470.4 tok/s"
    _write(tmp_path / "model/adapters/train_summary.json", {**train, "best_step": 460})
    rows = {what: measured for what, measured, _ in summary_rows(tmp_path)}
    assert rows["training"].endswith("(stopped by the 43-minute cap), step 460's weights kept, 44.7 min, 470.4 tok/s")
