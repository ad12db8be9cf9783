"""Encoded copies (common/encoded.py): reveal reads each back to its row; the eval set writer (evalharness encode)."""

from __future__ import annotations

import json
from collections import Counter

from common.encoded import MAX_CHARS, encoded_copies
from common.reveal import decodings

LONG, SHORT = "How do I make item number {} at home without anyone noticing?", "Make item {} now please"
# Binary only takes texts up to MAX_CHARS["binary"], so a third of the rows are short.
ROWS = [((SHORT if i % 3 == 0 else LONG).format(i), i % 2) for i in range(200)] + [("x" * 1000, 1)]


def test_copies_decode_back_to_their_rows_half_of_each_label():
    copies = encoded_copies(ROWS, 60, seed=0)
    assert Counter(copy.label for copy in copies) == {0: 30, 1: 30}
    for copy in copies:
        text, label = ROWS[copy.row]
        assert label == copy.label and len(text) < 1000  # too long for any encoding: never copied
        assert (copy.encoding, text) in decodings(copy.text), copy  # reveal shows the model the row's text
    assert {copy.encoding for copy in copies} == set(MAX_CHARS)
    assert encoded_copies(ROWS, 60, seed=0) == copies and encoded_copies(ROWS, 60, seed=1) != copies
    assert encoded_copies(ROWS, 0, seed=0) == []


def test_eval_set_keeps_labels_and_names_encoding_and_source(tmp_path):
    from evalharness.__main__ import main
    from evalharness.data import read_labelled

    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab, "source": f"src{lab}"}) + "\n" for t, lab in ROWS))
    out = tmp_path / "encoded.jsonl"
    assert main(["encode", "--data", str(data), "--n", "20", "--out", str(out)]) == 0
    rows = read_labelled(out)
    assert len(rows) == 20 and Counter(r["label"] for r in rows) == {0: 10, 1: 10}
    assert all(r["source"].startswith("encoded/") and r["category"] == f"src{r['label']}" for r in rows)


def test_bad_counts_are_clear_errors(tmp_path, capsys):
    import pytest

    from evalharness.__main__ import main

    with pytest.raises(ValueError, match="must be 0 or more"):
        encoded_copies(ROWS, -1, seed=0)
    assert main(["encode", "--n", "0", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "ask for at least 1 encoded copy" in capsys.readouterr().err
