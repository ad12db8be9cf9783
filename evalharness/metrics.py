"""Classification metrics for safe/unsafe predictions (unsafe = positive), in numpy, plus the metrics CLI.

Our formats: serve's output (`{"id","label","score"}` per line) joined to labelled JSONL/Parquet/CSV by id or order:
    python -m evalharness.metrics --labels data/processed/test.parquet --predictions preds.jsonl [--target-fpr 0.01]
The original project's command line (label in the assistant turn / completion; predictions with "response"):
    python -m evalharness.metrics --true_file data/chat/test.jsonl --pred_file preds.jsonl --format chat
A zero denominator gives null plus a note; a length mismatch or an unknown label is an error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.cli import run_cli

THRESHOLD = 0.5
TARGET_FPR = 0.01
SWEEP = tuple(round(t, 2) for t in np.arange(0.05, 1.0, 0.05))


def confusion(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """Counts tp, fp, tn, fn with unsafe (1) as the positive class."""
    t, p = _as_binary(y_true, "labels"), _as_binary(y_pred, "predictions")
    if len(t) != len(p):
        raise ValueError(f"{len(t)} labels but {len(p)} predictions; they must pair up one to one")
    return {
        "tp": int(np.sum((t == 1) & (p == 1))),
        "fp": int(np.sum((t == 0) & (p == 1))),
        "tn": int(np.sum((t == 0) & (p == 0))),
        "fn": int(np.sum((t == 1) & (p == 0))),
    }


def binary_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """Accuracy, precision, recall, F1, FPR, FNR, MCC and the confusion matrix; undefined ratios are None + a note."""
    c = confusion(y_true, y_pred)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    notes: list[str] = []
    precision = _ratio(tp, tp + fp, "precision", "no positive (unsafe) predictions", notes)
    recall = _ratio(tp, tp + fn, "recall", "no unsafe rows", notes)
    mcc_den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "n": tp + fp + tn + fn,
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn, "accuracy", "no rows", notes),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, "f1", "no unsafe rows and no unsafe predictions", notes),
        "fpr": _ratio(fp, fp + tn, "fpr", "no safe rows", notes),
        "fnr": _ratio(fn, fn + tp, "fnr", "no unsafe rows", notes),
        "mcc": _ratio(tp * tn - fp * fn, mcc_den, "mcc", "a row or column of the confusion matrix is empty", notes),
        "confusion": c,
        "notes": notes,
    }


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (ties handled as one step, as sklearn does); None with one class only."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    return None if fpr is None else float(np.trapezoid(tpr, fpr))


def roc_curve(y_true: Sequence[int], scores: Sequence[float]):
    """(fpr, tpr, thresholds) over distinct scores, starting at (0, 0); Nones when a class is missing."""
    t, s = _as_binary(y_true, "labels"), np.asarray(scores, dtype=float)
    tps, fps, thresholds = _cumulative(t, s)
    if tps[-1] == 0 or fps[-1] == 0:
        return None, None, None
    return np.r_[0, fps / fps[-1]], np.r_[0, tps / tps[-1]], np.r_[np.inf, thresholds]


def pr_curve(y_true: Sequence[int], scores: Sequence[float]):
    """(recall, precision) at each distinct score threshold, high to low; Nones without unsafe rows."""
    t, s = _as_binary(y_true, "labels"), np.asarray(scores, dtype=float)
    tps, fps, _ = _cumulative(t, s)
    if tps[-1] == 0:
        return None, None
    return np.r_[0, tps / tps[-1]], np.r_[1, tps / (tps + fps)]


def pr_auc(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Average precision (step-wise area under the PR curve, as sklearn's average_precision_score)."""
    recall, precision = pr_curve(y_true, scores)
    if recall is None:
        return None
    return float(np.sum(np.diff(recall) * precision[1:]))


def threshold_sweep(y_true: Sequence[int], scores: Sequence[float], thresholds: Sequence[float] = SWEEP) -> list:
    """Metrics at each threshold (predict unsafe when score >= threshold)."""
    s = np.asarray(scores, dtype=float)
    rows = []
    for threshold in thresholds:
        m = binary_metrics(y_true, (s >= threshold).astype(int))
        rows.append(
            {"threshold": float(threshold), **{k: m[k] for k in ("accuracy", "precision", "recall", "f1", "fpr")}}
        )
    return rows


def threshold_for_fpr(y_true: Sequence[int], scores: Sequence[float], target_fpr: float) -> dict:
    """The lowest threshold whose FPR is at most `target_fpr` (the most recall that FPR budget allows)."""
    t, s = _as_binary(y_true, "labels"), np.asarray(scores, dtype=float)
    if not np.any(t == 0):
        return {"target_fpr": target_fpr, "threshold": None, "note": "no safe rows: FPR is undefined"}
    best = None
    for threshold in sorted(set(s.tolist()) | {math.inf}, reverse=True):
        fpr = float(np.mean(s[t == 0] >= threshold))
        if fpr > target_fpr:
            break
        best = threshold
    m = binary_metrics(t, (s >= best).astype(int))
    return {
        "target_fpr": target_fpr,
        "threshold": None if math.isinf(best) else float(best),
        **{k: m[k] for k in ("fpr", "recall", "precision", "f1", "accuracy")},
    }


def breakdown(rows: Sequence[dict], key: str) -> dict:
    """Metrics per value of `key` (source, category) over rows with label and pred; None values are skipped."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row.get(key) is not None:
            groups.setdefault(str(row[key]), []).append(row)
    out = {}
    for name in sorted(groups):
        group = groups[name]
        m = binary_metrics([r["label"] for r in group], [r["pred"] for r in group])
        n_unsafe = sum(r["label"] for r in group)
        out[name] = {"n": m["n"], "n_unsafe": n_unsafe, "n_safe": m["n"] - n_unsafe}
        out[name].update({k: m[k] for k in ("accuracy", "recall", "fpr", "f1")})
    return out


def compute_report(rows: Sequence[dict], threshold: float = THRESHOLD, target_fpr: float = TARGET_FPR) -> dict:
    """Everything for rows with `label` and `score` (and optional `pred`, `source`, `category`)."""
    y = [r["label"] for r in rows]
    scores = [r["score"] for r in rows]
    preds = [int(r["score"] >= threshold) for r in rows]
    for row, pred in zip(rows, preds, strict=True):
        row["pred"] = pred
    report = {"threshold": threshold, **binary_metrics(y, preds)}
    report["roc_auc"] = roc_auc(y, scores)
    report["pr_auc"] = pr_auc(y, scores)
    if report["roc_auc"] is None:
        report["notes"].append("roc_auc and pr_auc: need both classes (pr_auc needs unsafe rows)")
    report["at_target_fpr"] = threshold_for_fpr(y, scores, target_fpr)
    report["sweep"] = threshold_sweep(y, scores)
    report["by_source"] = breakdown(rows, "source")
    if any(r.get("category") for r in rows):
        report["by_category"] = breakdown(rows, "category")
    return report


# --- joining predictions to labels -------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[dict]:
    """Objects from a JSONL file (blank lines skipped)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def join_predictions(rows: Sequence[dict], predictions: Sequence[dict], by: str = "auto") -> list[dict]:
    """Attach serve's score (P(unsafe)) to labelled rows by `id` (auto when every prediction has one) or by order."""
    if by == "auto":
        by = "id" if predictions and all("id" in p for p in predictions) else "order"
    if by == "order" and len(predictions) != len(rows):
        raise ValueError(f"{len(rows)} labelled rows but {len(predictions)} predictions; they must pair up")
    if by == "id":
        index = {str(p["id"]): p for p in predictions}
        missing = [r["id"] for r in rows if r["id"] not in index]
        if missing:
            raise ValueError(f"{len(missing)} labelled ids have no prediction (first: {missing[0]!r})")
        predictions = [index[r["id"]] for r in rows]
    joined = []
    for row, pred in zip(rows, predictions, strict=True):
        if "score" not in pred:
            raise ValueError(f"prediction for id {row['id']!r} has no score; expected serve's output")
        joined.append({**row, "score": float(pred["score"])})
    return joined


def read_original(true_file: str | Path, pred_file: str | Path, fmt: str, labels=("safe", "unsafe")) -> dict:
    """The original metrics.py inputs: label from the assistant turn / completion, prediction from "response"."""
    from evalharness.data import parse_label

    truth = read_jsonl(true_file)
    preds = read_jsonl(pred_file)
    if len(truth) != len(preds):
        raise ValueError(f"{true_file} has {len(truth)} rows but {pred_file} has {len(preds)}; they must pair up")
    y, p, unparsed = [], [], 0
    for i, (t, r) in enumerate(zip(truth, preds, strict=True)):
        if fmt == "chat":
            answer = next((m["content"] for m in t.get("messages", []) if m["role"] == "assistant"), None)
        else:
            answer = t.get("completion")
        if answer is None:
            raise ValueError(f"{true_file} row {i}: no label ({'assistant turn' if fmt == 'chat' else 'completion'})")
        if "response" not in r:
            raise ValueError(f'{pred_file} row {i}: no "response" field')
        label = parse_label(answer, labels, where=f"{true_file} row {i}: ")
        words = {labels[0].lower(): 0, labels[1].lower(): 1, "0": 0, "1": 1}
        # Free text is compared with the label word after strip + lowercase; anything else counts as wrong.
        response = str(r["response"]).strip().lower()
        pred = words.get(response)
        if pred is None:
            unparsed += 1
            pred = 1 - label
        y.append(label)
        p.append(pred)
    report = binary_metrics(y, p)
    report["unparsed_responses"] = unparsed
    if unparsed:
        report["notes"].append(f"{unparsed} responses were not a label word and count as wrong")
    return report


def _cumulative(t: np.ndarray, s: np.ndarray):
    if len(t) != len(s):
        raise ValueError(f"{len(t)} labels but {len(s)} scores; they must pair up one to one")
    if np.any(~np.isfinite(s)):
        raise ValueError("scores must be finite numbers")
    order = np.argsort(-s, kind="mergesort")
    t, s = t[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(t)[last].astype(float)
    fps = (last + 1 - tps).astype(float)
    return tps, fps, s[last]


def _as_binary(values, what: str) -> np.ndarray:
    arr = np.asarray(list(values))
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))][0]
        raise ValueError(f"unknown {what[:-1]} {bad.item()!r}; expected 0 (safe) or 1 (unsafe)")
    return arr.astype(int)


def _ratio(num: float, den: float, name: str, why: str, notes: list[str]) -> float | None:
    if den == 0:
        notes.append(f"{name}: undefined ({why})")
        return None
    return float(num / den)


def format_summary(report: dict) -> str:
    """One line of the headline numbers."""
    parts = [f"n={report['n']}"]
    for key in ("accuracy", "precision", "recall", "f1", "fpr", "mcc", "roc_auc", "pr_auc"):
        if key in report:
            value = report[key]
            parts.append(f"{key}={'null' if value is None else f'{value:.4f}'}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalharness.metrics", description=__doc__.split("\n")[0])
    parser.add_argument("--labels", help="labelled rows: JSONL/Parquet/CSV with text and label (0/1 or label word)")
    parser.add_argument("--predictions", help="serve's output JSONL: {id, label, score}")
    parser.add_argument("--join", choices=("auto", "id", "order"), default="auto", help="how predictions pair up")
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="predict unsafe when score >= this")
    parser.add_argument("--target-fpr", type=float, default=TARGET_FPR, help="report the threshold meeting this FPR")
    parser.add_argument("--true_file", help="original CLI: mlx-lm JSONL with the label in the answer")
    parser.add_argument("--pred_file", help='original CLI: predictions JSONL with a "response" field')
    parser.add_argument(
        "--format", choices=("chat", "completion"), default="chat", help="original CLI: true_file format"
    )
    parser.add_argument("--out", help="also write the full report JSON here")
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(args), uses_mlx=False)


def _run(args) -> int:
    from evalharness.data import read_labelled

    if args.true_file or args.pred_file:
        if not (args.true_file and args.pred_file):
            raise ValueError("--true_file and --pred_file go together")
        report = read_original(args.true_file, args.pred_file, args.format)
    elif args.labels and args.predictions:
        rows = join_predictions(read_labelled(args.labels), read_jsonl(args.predictions), args.join)
        report = compute_report(rows, args.threshold, args.target_fpr)
    else:
        raise ValueError("pass --labels FILE --predictions FILE, or the original --true_file/--pred_file/--format")
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    print(format_summary(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
