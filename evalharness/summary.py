"""The end-of-pipeline summary: data sizes, training, test metrics, the original's benchmark, serve speed.

    python -m evalharness summary        # reads the files the stages wrote; writes output/summary.md

Every figure is read from a file a stage wrote in this run; a missing file is shown as "not run".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"f1": 0.97, "fpr": 0.03, "alarming_fpr": 0.10, "original_accuracy": 0.9735}
ALARMING_SOURCE = "project/safe_alarming"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _training(train: dict) -> str:
    """Steps, time and speed; the examples when recorded, why it stopped when not at `iters`, and which weights were
    kept when not the last."""
    steps = f"{train['steps']} steps"
    if train.get("train_examples"):
        copies = train.get("encoded_copies") or 0
        steps += f" on {train['train_examples']:,} examples" + (f" ({copies:,} encoded copies)" if copies else "")
    if train.get("stop") == "max_seconds" and train.get("max_seconds"):
        cap = f"{train['max_seconds'] / 60:.0f}-minute cap"
        fitted = train.get("schedule_end", math.inf) < train.get("iters", 0)  # re-planned to end within the cap
        steps += f" (schedule fitted to the {cap})" if fitted else f" (stopped by the {cap})"
    elif train.get("stop") == "patience":
        steps += " (early stop)"
    if train.get("best_step") and train["best_step"] != train["steps"]:  # validation kept earlier weights
        steps += f", step {train['best_step']}'s weights kept"
    return f"{steps}, {train['seconds'] / 60:.1f} min, {train['tokens_per_second']} tok/s"


def summary_rows(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(what, measured, target) rows from the stage outputs under `root`."""
    rows: list[tuple[str, str, str]] = []
    manifest = _load(root / "data/processed/manifest.json")
    if manifest:
        totals, balance = manifest["totals"], manifest["class_balance"]
        rows.append(
            (
                "data rows (train/valid/test)",
                f"{totals['train']:,} / {totals['valid']:,} / {totals['test']:,}",
                "≥ 15,000 in all",
            )
        )
        rows.append(("unsafe share", _pct(balance["unsafe"]["share"]), "each class ≥ 35%"))
    else:
        rows.append(("data", "not run", ""))
    train = _load(root / "model/adapters/train_summary.json")
    if train:
        rows.append(("training", _training(train), "≤ 30 min"))
    test = _load(root / "output/eval/test/metrics.json")
    if test:
        rows.append(("decision threshold (calibrate: FPR ≤ 2% on valid)", _num(test.get("threshold")), ""))
        rows.append(("test F1 (unsafe)", _num(test["f1"]), f"≥ {TARGETS['f1']}"))
        rows.append(("test FPR", _pct(test["fpr"]), f"≤ {_pct(TARGETS['fpr'])}"))
        rows.append(("test accuracy / ROC-AUC", f"{_num(test['accuracy'])} / {_num(test['roc_auc'])}", ""))
        alarming = test.get("by_source", {}).get(ALARMING_SOURCE)
        if alarming:
            rows.append(
                ("safe-but-alarming FPR (test part)", _pct(alarming.get("fpr")), f"≤ {_pct(TARGETS['alarming_fpr'])}")
            )
        check = test.get("lm_eval_check")
        if check:
            verdict = "equal" if check["equal"] else "DIFFER"
            rows.append(
                (
                    "lm-eval acc vs serve acc",
                    f"{_num(check['lm_eval_accuracy'])} vs {_num(check['serve_accuracy'])} ({verdict})",
                    "equal",
                )
            )
        speed = test.get("serve")
        if speed:
            rows.append(
                (
                    "serve speed (eval on the test split, start-up included)",
                    f"{speed['texts_per_s']:.1f} texts/s ({speed['texts']:,} texts in {speed['seconds']:.0f} s)",
                    "`invoke bench`: ≥ 40% of the FLOP bound",
                )
            )
    else:
        rows.append(("test metrics", "not run", ""))
    original = _load(root / "output/eval/safe-guard/metrics.json")
    if original:
        rows.append(
            (
                "original's test split: accuracy",
                f"{_num(original['accuracy'])} (F1 {_num(original['f1'])}, FPR {_pct(original['fpr'])})",
                f"≥ {TARGETS['original_accuracy']} (seed, in-distribution)",
            )
        )
    serve = _load(root / "output/bench/serve.json")
    if serve and serve.get("serve"):
        rows.append(("serve prompts/s", str(serve["serve"].get("prompts_per_s")), "see bench"))
    return rows


def render(rows: list[tuple[str, str, str]]) -> str:
    """A markdown table."""
    lines = ["| what | measured | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def write_summary(root: Path = ROOT) -> str:
    """Write output/summary.md and return it."""
    text = "# Prompt Safety Check: pipeline summary\n\n" + render(summary_rows(root))
    out = root / "output/summary.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
