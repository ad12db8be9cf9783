"""prompt_safety task helpers: docs rendered with the classifier contract, F1 (unsafe positive) and MCC.

lm-eval calls `load_docs(**metadata)`; metadata holds the model args (pretrained, adapter_path, contract) and
`data` (a JSONL/Parquet/CSV file; default data/processed/test.parquet).
"""

from __future__ import annotations

from pathlib import Path

import datasets
from mlx_lm.utils import load_tokenizer

from evalharness.data import DEFAULT_DATA, read_labelled, resolve_contract
from evalharness.metrics import binary_metrics


def load_docs(
    pretrained=None, path_or_hf_repo=None, adapter_path=None, contract=None, data=None, choices="first_token", **_meta
):
    """{"test": rows with id, text, label, source, prompt (the contract's rendered prompt) and choices}.

    choices="first_token" (default): the text of each label word's first token, the two tokens serve compares
    (SmolLM2 splits "unsafe" into "uns" + "afe"), so the task's accuracy equals serve's at threshold 0.5.
    choices="words": the whole label words (log-likelihood summed over their tokens).
    """
    model = pretrained or path_or_hf_repo
    if not model:
        raise ValueError("prompt_safety needs the model directory (model_args pretrained=DIR)")
    tokenizer = load_tokenizer(Path(model))
    chosen = resolve_contract(model, adapter_path, contract)
    rows = read_labelled(data or DEFAULT_DATA, chosen.labels)
    if choices == "words":
        options = [chosen.answer_text(0), chosen.answer_text(1)]
    elif choices == "first_token":
        options = [tokenizer.decode([i]) for i in chosen.label_ids(tokenizer)]
    else:
        raise ValueError(f"prompt_safety: choices must be first_token or words, not {choices!r}")
    docs = [
        {
            "id": r["id"],
            "text": r["text"],
            "label": r["label"],
            "source": r["source"],
            "prompt": chosen.prompt_text(tokenizer, r["text"]),
            "choices": options,
        }
        for r in rows
    ]
    return {"test": datasets.Dataset.from_list(docs)}


def f1_unsafe(items) -> float:
    """F1 with unsafe (choice 1) as the positive class; 0.0 when undefined (lm-eval needs a number)."""
    value = binary_metrics(*_split(items))["f1"]
    return 0.0 if value is None else value


def mcc(items) -> float:
    """Matthews correlation; 0.0 when undefined."""
    value = binary_metrics(*_split(items))["mcc"]
    return 0.0 if value is None else value


def _split(items):
    golds, preds = zip(*items, strict=True)
    return [int(g) for g in golds], [int(p) for p in preds]
