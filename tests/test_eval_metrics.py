"""Metrics against hand-worked confusion matrices, AUCs against sklearn, the metrics CLIs, and the report files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalharness.metrics import binary_metrics, compute_report, join_predictions, pr_auc, roc_auc, threshold_for_fpr
from evalharness.report import PLOTS, write_report

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def test_hand_worked_confusion():
    # tp=3 fp=1 tn=4 fn=2
    y = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    m = binary_metrics(y, p)
    assert m["confusion"] == {"tp": 3, "fp": 1, "tn": 4, "fn": 2}
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["fpr"] == pytest.approx(0.2)
    assert m["fnr"] == pytest.approx(0.4)
    assert m["mcc"] == pytest.approx((12 - 2) / math.sqrt(4 * 5 * 5 * 6))
    assert m["notes"] == []


def test_all_safe_rows_and_no_positive_predictions():
    m = binary_metrics([0, 0, 0], [0, 0, 0])
    assert m["confusion"] == {"tp": 0, "fp": 0, "tn": 3, "fn": 0}
    assert m["accuracy"] == 1.0 and m["fpr"] == 0.0
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None and m["mcc"] is None
    assert any(n.startswith("precision: undefined") for n in m["notes"])


def test_all_unsafe_rows_all_flagged():
    m = binary_metrics([1, 1], [1, 1])
    assert m["recall"] == 1.0 and m["precision"] == 1.0 and m["f1"] == 1.0
    assert m["fpr"] is None and m["mcc"] is None


def test_no_positives_predicted_on_mixed_rows():
    m = binary_metrics([1, 0, 1, 0], [0, 0, 0, 0])
    assert m["precision"] is None and m["recall"] == 0.0 and m["f1"] == 0.0 and m["fnr"] == 1.0
    assert m["mcc"] is None


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        binary_metrics([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="unknown label 2"):
        binary_metrics([0, 2], [0, 1])


def test_auc_matches_sklearn_on_random_data():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 2, 300)
        scores = np.round(rng.random(300) * 0.5 + y * 0.3, 2)  # rounded: many ties
        assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
        assert pr_auc(y, scores) == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert roc_auc([1, 1], [0.2, 0.9]) is None and pr_auc([0, 0], [0.1, 0.3]) is None


def test_threshold_for_target_fpr():
    y = [0, 0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.9, 0.8, 0.95, 0.4]
    t = threshold_for_fpr(y, s, 0.0)
    assert t["threshold"] == pytest.approx(0.95) and t["fpr"] == 0.0 and t["recall"] == pytest.approx(1 / 3)
    t = threshold_for_fpr(y, s, 0.25)
    assert t["threshold"] == pytest.approx(0.4) and t["fpr"] == 0.25 and t["recall"] == 1.0


def test_join_by_id_and_order():
    rows = [{"id": "a", "label": 1}, {"id": "b", "label": 0}]
    by_id = join_predictions(rows, [{"id": "b", "score": 0.1}, {"id": "a", "score": 0.9}])
    assert [r["score"] for r in by_id] == [0.9, 0.1]
    by_order = join_predictions(rows, [{"score": 0.7}, {"score": 0.2}])
    assert [r["score"] for r in by_order] == [0.7, 0.2]
    with pytest.raises(ValueError, match="2 labelled rows but 1 predictions"):
        join_predictions(rows, [{"score": 0.7}])
    with pytest.raises(ValueError, match="no prediction"):
        join_predictions(rows, [{"id": "a", "score": 0.7}, {"id": "c", "score": 0.7}])


def _run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "evalharness.metrics", *args], capture_output=True, text=True, cwd=ROOT, input=stdin
    )


def test_original_cli_chat_and_completion(tmp_path):
    chat = [("safe", "safe"), ("unsafe", " Unsafe\n"), ("unsafe", "safe"), ("safe", "I cannot tell")]
    true_file, pred_file = tmp_path / "test.jsonl", tmp_path / "pred.jsonl"
    true_file.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": t}]}) + "\n"
            for t, _ in chat
        )
    )
    pred_file.write_text("".join(json.dumps({"response": r}) + "\n" for _, r in chat))
    done = _run("--true_file", str(true_file), "--pred_file", str(pred_file), "--format", "chat")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # the unparsed response on a safe row counts as a false positive
    assert report["confusion"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert report["unparsed_responses"] == 1

    comp = tmp_path / "comp.jsonl"
    comp.write_text("".join(json.dumps({"prompt": "x", "completion": t}) + "\n" for t, _ in chat))
    done = _run("--true_file", str(comp), "--pred_file", str(pred_file), "--format", "completion")
    assert done.returncode == 0 and json.loads(done.stdout)["accuracy"] == 0.5

    pred_file.write_text(json.dumps({"response": "safe"}) + "\n")
    done = _run("--true_file", str(true_file), "--pred_file", str(pred_file))
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "has 4 rows but" in done.stderr


def test_serve_output_cli_with_csv_labels(tmp_path):
    labels = tmp_path / "test.csv"
    labels.write_text('ArticleId,text,label\n1,"multi\nline, quoted",1\n2,hello,0\n3,bye,0\n')
    preds = tmp_path / "serve.jsonl"
    preds.write_text(
        "".join(json.dumps({"id": str(i), "label": "x", "score": s}) + "\n" for i, s in enumerate([0.9, 0.6, 0.1]))
    )
    out = tmp_path / "m.json"
    done = _run("--labels", str(labels), "--predictions", str(preds), "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["confusion"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 0}
    assert report["roc_auc"] == 1.0
    assert list(report["by_source"]) == [f"{tmp_path.name}/test"]
    labels.write_text("text,label\nhello,maybe\n")
    done = _run("--labels", str(labels), "--predictions", str(preds))
    assert done.returncode == 2 and "unknown label 'maybe'" in done.stderr


def test_report_files_and_pngs(tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        {"id": str(i), "label": int(i % 3 == 0), "score": float(rng.random()), "source": src, "category": None}
        for i, src in enumerate(["project/safe_alarming", "other"] * 20)
    ]
    report = compute_report(rows)
    metrics = {"model": "m", "adapters": None, "data": "d", "contract_version": 1, "lm_eval_task_version": 1.0}
    metrics |= report | {"original": {"accuracy": 0.9735, "model": "seed"}}
    paths = write_report(tmp_path, metrics, rows)
    for name in PLOTS:
        assert (tmp_path / name).read_bytes()[:8] == PNG
    text = (tmp_path / "report.md").read_text()
    assert "**Safe-but-alarming set (`project/safe_alarming`): FPR" in text
    assert "| original (seed) | 0.9735 |" in text
    assert len(paths) == 5


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.jsonl", '{"text": "hi", "label": 0}\n{"text": "b"}\n', r"a.jsonl:2: no 'label'"),
        ("b.jsonl", '{"text": "hi", "label": 0}\nnot json\n', r"b.jsonl:2: malformed JSON"),
        ("c.jsonl", '{"messages": [{"role": "user"}]}\n', r"c.jsonl:1: 'messages' must be a list"),
        ("d.jsonl", '{"text": null, "label": 1}\n', r"d.jsonl:1: no 'text'"),
        ("e.csv", "text,label\nhi,benign\n,1\n", r"e.csv:3: 'text' must be a non-empty string"),
        ("f.csv", "text,label\nhi,maybe\n", r"f.csv:2: 'label': unknown label 'maybe'"),
        ("g.csv", b"text,label\n\xff,1\n", r"g.csv: invalid UTF-8 at byte 11"),
    ],
)
def test_bad_labelled_rows_name_file_line_and_field(tmp_path, name, content, message):
    from evalharness.data import read_labelled

    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        read_labelled(path)


def test_labelled_rows_from_json_arrays_synonyms_and_line_separators(tmp_path):
    from evalharness.data import read_labelled

    (tmp_path / "rows.json").write_text('[{"text": "x", "label": "malicious"}, {"text": "y", "label": "benign"}]')
    assert [r["label"] for r in read_labelled(tmp_path / "rows.json")] == [1, 0]
    line = json.dumps({"text": "a\u2028b", "label": "unsafe"}, ensure_ascii=False)  # U+2028 is valid inside JSON
    (tmp_path / "rows.jsonl").write_text(line + "\n" + line.replace("unsafe", "safe") + "\n", encoding="utf-8")
    assert [(r["text"], r["label"]) for r in read_labelled(tmp_path / "rows.jsonl")] == [
        ("a\u2028b", 1),
        ("a\u2028b", 0),
    ]
