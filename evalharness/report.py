"""report.md and PNG plots (confusion matrix, ROC, PR, score histogram by label) for an eval run.

from evalharness.report import write_report
write_report(Path("output/eval/fused__test"), metrics, rows)   # rows: label, pred, score
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evalharness.metrics import pr_curve, roc_curve  # noqa: E402

PLOTS = ("confusion.png", "roc.png", "pr.png", "scores.png")
# The project-written safe-but-alarming set: the false positives we most want to avoid.
ALARMING_SOURCE = "project/safe_alarming"


def write_report(out: Path, metrics: dict, rows: list[dict]) -> list[Path]:
    """Write the four plots and report.md into `out`; returns the paths."""
    y = np.array([r["label"] for r in rows])
    scores = np.array([r["score"] for r in rows])
    paths = [
        _plot_confusion(out / PLOTS[0], metrics["confusion"]),
        _plot_roc(out / PLOTS[1], y, scores, metrics.get("roc_auc")),
        _plot_pr(out / PLOTS[2], y, scores, metrics.get("pr_auc")),
        _plot_scores(out / PLOTS[3], y, scores, metrics["threshold"]),
    ]
    report = out / "report.md"
    report.write_text(render_markdown(metrics))
    return [*paths, report]


def render_markdown(m: dict) -> str:
    """The report as Markdown."""
    model = m["model"] + (f" + adapters {m['adapters']}" if m.get("adapters") else "")
    lines = [
        f"# Evaluation: {model}",
        "",
        f"Data: `{m['data']}` ({m['n']} rows) · threshold {m['threshold']} · contract v{m['contract_version']} · "
        f"lm-eval task v{m['lm_eval_task_version']}",
        "",
    ]
    if "original" in m:
        lines += [
            "## Against the original project (safe-guard test split)",
            "",
            "| | accuracy | F1 | FPR |",
            "|---|---:|---:|---:|",
            f"| this model | {_f(m['accuracy'])} | {_f(m['f1'])} | {_f(m['fpr'])} |",
            f"| original ({m['original']['model']}) | {m['original']['accuracy']:.4f} | n/a | n/a |",
            "",
        ]
    alarming = m.get("by_source", {}).get(ALARMING_SOURCE)
    if alarming:
        lines += [
            f"**Safe-but-alarming set (`{ALARMING_SOURCE}`): FPR {_f(alarming['fpr'])}** "
            f"on {alarming['n_safe']} safe rows.",
            "",
        ]
    c = m["confusion"]
    lines += [
        "## Metrics (unsafe = positive)",
        "",
        "| accuracy | precision | recall | F1 | FPR | FNR | MCC | ROC-AUC | PR-AUC |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(_f(m.get(k)) for k in ("accuracy", "precision", "recall", "f1", "fpr", "fnr", "mcc"))
        + f" | {_f(m.get('roc_auc'))} | {_f(m.get('pr_auc'))} |",
        "",
        "| | predicted safe | predicted unsafe |",
        "|---|---:|---:|",
        f"| safe | {c['tn']} | {c['fp']} |",
        f"| unsafe | {c['fn']} | {c['tp']} |",
        "",
    ]
    t = m["at_target_fpr"]
    if t.get("threshold") is not None:
        lines += [
            f"At FPR <= {t['target_fpr']}: threshold {t['threshold']:.4f} gives FPR {_f(t['fpr'])}, "
            f"recall {_f(t['recall'])}, precision {_f(t['precision'])}.",
            "",
        ]
    elif "note" in t:
        lines += [f"Target FPR {t['target_fpr']}: {t['note']}.", ""]
    for key, title in (("by_source", "source"), ("by_category", "category")):
        if m.get(key):
            lines += [
                f"## By {title}",
                "",
                f"| {title} | n | safe | unsafe | accuracy | recall | FPR |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for name, g in m[key].items():
                label = f"**{name}**" if name == ALARMING_SOURCE else name
                lines.append(
                    f"| {label} | {g['n']} | {g['n_safe']} | {g['n_unsafe']} | {_f(g['accuracy'])} | "
                    f"{_f(g['recall'])} | {_f(g['fpr'])} |"
                )
            lines.append("")
    lines += ["## Threshold sweep", "", "| threshold | accuracy | precision | recall | F1 | FPR |"]
    lines += ["|---:|---:|---:|---:|---:|---:|"]
    for s in m["sweep"]:
        lines.append(
            f"| {s['threshold']:.2f} | "
            + " | ".join(_f(s[k]) for k in ("accuracy", "precision", "recall", "f1", "fpr"))
            + " |"
        )
    lines += ["", "![confusion](confusion.png) ![roc](roc.png) ![pr](pr.png) ![scores](scores.png)", ""]
    if m.get("lm_eval_check"):
        ck = m["lm_eval_check"]
        lines += [
            f"lm-eval check: serve accuracy {ck['serve_accuracy']:.4f}, lm-eval accuracy {ck['lm_eval_accuracy']:.4f} "
            f"on {ck['n']} rows ({'equal' if ck['equal'] else 'DIFFER'}).",
            "",
        ]
    if m.get("notes"):
        lines += ["Notes: " + "; ".join(m["notes"]), ""]
    return "\n".join(lines)


def _f(value) -> str:
    return "null" if value is None else f"{value:.4f}"


def _plot_confusion(path: Path, c: dict) -> Path:
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(grid, cmap="Blues")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, str(value), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["safe", "unsafe"], yticklabels=["safe", "unsafe"])
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    return _save(fig, path)


def _plot_roc(path: Path, y, scores, auc) -> Path:
    fpr, tpr, _ = roc_curve(y, scores)
    fig, ax = plt.subplots(figsize=(4, 3.5))
    if fpr is not None:
        ax.plot(fpr, tpr, label=f"AUC {auc:.4f}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "one class only", ha="center")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    return _save(fig, path)


def _plot_pr(path: Path, y, scores, auc) -> Path:
    recall, precision = pr_curve(y, scores)
    fig, ax = plt.subplots(figsize=(4, 3.5))
    if recall is not None:
        ax.step(recall, precision, where="post", label=f"AP {auc:.4f}")
        ax.legend(loc="lower left")
    else:
        ax.text(0.5, 0.5, "no unsafe rows", ha="center")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    return _save(fig, path)


def _plot_scores(path: Path, y, scores, threshold: float) -> Path:
    fig, ax = plt.subplots(figsize=(4, 3.5))
    bins = np.linspace(0, 1, 41)
    for label, name in ((0, "safe"), (1, "unsafe")):
        if np.any(y == label):
            ax.hist(scores[y == label], bins=bins, alpha=0.6, label=name)
    ax.axvline(threshold, ls="--", color="black")
    ax.set(xlabel="score = P(unsafe)", ylabel="rows", title="Scores by true label")
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
