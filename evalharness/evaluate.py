"""`eval`: run `python -m serve` over labelled data, compute the metrics, write output/eval/<name>/.

    python -m evalharness eval --model model/fused [--adapters DIR] [--data FILE] [--name NAME]
writes metrics.json (with the contract and lm-eval task versions), predictions.jsonl, report.md, config.json
and PNG plots. `check` compares lm-eval's accuracy with serve's at threshold 0.5 on the same rows.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common.calibration import read_threshold
from common.config import config_dict, write_config
from evalharness.data import (
    DEFAULT_DATA,
    ORIGINAL_ACCURACY,
    ROOT,
    is_original_benchmark,
    read_labelled,
    resolve_contract,
)
from evalharness.metrics import compute_report, format_summary, join_predictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalRun:
    """One evaluation: model (+ adapters) on a labelled file."""

    model: str
    adapters: str | None = None
    contract: str | None = None
    data: str | None = None  # default data/processed/test.parquet
    name: str | None = None  # default <model>[+<adapters>]__<data stem>
    limit: int | None = None
    threshold: float | None = None  # None: the model's calibration.json, else 0.5 (what serve uses)
    target_fpr: float = 0.01
    batch_size: int | None = None  # serve's default when None
    check_lm_eval: bool = False
    out_root: str = str(ROOT / "output/eval")


def score_with_serve(run: EvalRun, rows: list[dict]) -> list[dict]:
    """Feed {"id","text"} lines to `python -m serve` and return its output lines (stderr passes through)."""
    if run.contract:
        raise ValueError("serve reads the contract from the model/adapters dir; --contract works for lm-eval only")
    # Absolute paths: serve runs in the repo root (importable from there), the user's paths are relative to theirs.
    command = [sys.executable, "-m", "serve", "--model", str(Path(run.model).resolve())]
    if run.adapters is not None:
        command += ["--adapters", str(Path(run.adapters).resolve())]
    if run.batch_size is not None:
        command += ["--batch-size", str(run.batch_size)]
    with tempfile.TemporaryFile("w+") as stdin:
        stdin.writelines(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows)
        stdin.seek(0)
        log.info("scoring %d rows: %s", len(rows), " ".join(command))
        done = subprocess.run(command, stdin=stdin, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise ValueError(f"serve exited with {done.returncode} (see its messages above)")
    return [json.loads(line) for line in done.stdout.split("\n") if line.strip()]  # not splitlines: U+2028


def run_eval(run: EvalRun) -> dict:
    """Serve, metrics, report; returns metrics.json's content."""
    from evalharness.lm_eval_run import default_name, task_version
    from evalharness.report import write_report

    contract = resolve_contract(run.model, run.adapters, run.contract)
    data = str(run.data or DEFAULT_DATA)
    rows = read_labelled(data, contract.labels)[: run.limit]
    start = time.perf_counter()
    joined = join_predictions(rows, score_with_serve(run, rows), by="id")
    seconds = time.perf_counter() - start
    threshold = run.threshold
    if threshold is None:
        threshold, source = read_threshold(run.model, run.adapters)
        log.info("threshold %.4f (%s)", threshold, source)
    report = compute_report(joined, threshold, run.target_fpr)
    out = Path(run.out_root) / (run.name or default_name(run.model, run.adapters, data))
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "model": run.model,
        "adapters": run.adapters,
        "data": data,
        "contract_version": contract.version,
        "lm_eval_task_version": task_version(),
        "contract": contract.to_dict(),
        **report,
        # serve's wall time here includes its start-up and model load: the speed a user of this pipeline sees.
        "serve": {"texts": len(rows), "seconds": round(seconds, 1), "texts_per_s": round(len(rows) / seconds, 2)},
    }
    if is_original_benchmark(data):
        metrics["original"] = {"accuracy": ORIGINAL_ACCURACY, "model": "Qwen2.5-0.5B-Instruct (the seed project)"}
    if run.check_lm_eval:
        metrics["lm_eval_check"] = check_against_lm_eval(run, joined)
    with (out / "predictions.jsonl").open("w") as handle:
        for r in joined:
            keep = ("id", "label", "pred", "score", "source", "category", "text")
            handle.write(json.dumps({k: r.get(k) for k in keep}) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_config(run, out / "config.json")
    write_report(out, metrics, joined)
    print(f"{out}: {format_summary(report)}")
    return metrics


def check_against_lm_eval(run: EvalRun, scored: list[dict] | None = None) -> dict:
    """lm-eval's prompt_safety accuracy vs serve's accuracy at 0.5 on the same rows, with per-row disagreements."""
    from evalharness.lm_eval_run import LmEvalRun, default_name, run_lm_eval

    contract = resolve_contract(run.model, run.adapters, run.contract)
    data = str(run.data or DEFAULT_DATA)
    if scored is None:
        rows = read_labelled(data, contract.labels)[: run.limit]
        scored = join_predictions(rows, score_with_serve(run, rows), by="id")
    # lm-eval's files go beside the eval's: output/eval/<name>/lm-eval/
    out_root = Path(run.out_root) / (run.name or default_name(run.model, run.adapters, data))
    lm_run = LmEvalRun(run.model, run.adapters, run.contract, data, len(scored), name="lm-eval", out_root=str(out_root))
    summary = run_lm_eval(lm_run)
    samples = [json.loads(line) for line in (Path(summary["out"]) / "samples.jsonl").read_text().splitlines()]
    if [s["id"] for s in samples] != [r["id"] for r in scored]:
        raise ValueError("lm-eval and serve saw different rows; check --data and --limit")
    serve_pred = [int(r["score"] >= 0.5) for r in scored]
    serve_acc = sum(p == r["label"] for p, r in zip(serve_pred, scored, strict=True)) / len(scored)
    differ = [
        {"id": r["id"], "serve_score": r["score"], "lm_eval_loglik": s["loglik"]}
        for r, s, p in zip(scored, samples, serve_pred, strict=True)
        if s["pred"] != p
    ]
    result = {
        "n": len(scored),
        "serve_accuracy": serve_acc,
        "lm_eval_accuracy": summary["acc"],
        "equal": abs(serve_acc - summary["acc"]) < 1e-9,
        "rows_that_differ": differ,
        "lm_eval_out": summary["out"],
        "config": config_dict(run),
    }
    verdict = "equal" if result["equal"] else "DIFFER"
    print(f"check: serve accuracy {serve_acc:.4f} vs lm-eval {summary['acc']:.4f} on {len(scored)} rows: {verdict}")
    return result
