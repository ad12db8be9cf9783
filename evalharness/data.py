"""Labelled rows from Parquet, JSONL (flat or mlx-lm chat/completion) or CSV, and the contract for a model.

from evalharness.data import read_labelled
rows = read_labelled("data/processed/test.parquet")   # [{"id", "text", "label", "source", "category"}, ...]
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from common.contract import Contract, read_contract

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "data/processed/test.parquet"
# The original project's test split; its report compares with the accuracy the original published.
ORIGINAL_ACCURACY = 0.9735


def is_original_benchmark(path: str | Path) -> bool:
    """True for the safe-guard test split that the original project reported 0.9735 accuracy on."""
    path = Path(path)
    return path.name == "test.csv" and path.parent.name == "safe-guard"


def parse_label(value, labels: tuple[str, str] = ("safe", "unsafe"), where: str = "") -> int:
    """0/1, "0"/"1", True/False or a label word (case-insensitive) -> 0 safe, 1 unsafe; anything else is an error."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("0", "1"):
            return int(word)
        if word in (labels[0].lower(), labels[1].lower()):
            return 0 if word == labels[0].lower() else 1
    raise ValueError(f"{where}unknown label {value!r}; expected 0/1 or one of {list(labels)}")


def read_labelled(path: str | Path, labels: tuple[str, str] = ("safe", "unsafe")) -> list[dict]:
    """Read labelled rows; ids come from an `id` column when present and unique, else the row number."""
    path = Path(path)
    if not path.exists():
        hint = " (run `invoke prep` first)" if path == DEFAULT_DATA else ""
        raise ValueError(f"{path}: no such file{hint}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        raw = pq.read_table(path).to_pylist()
    elif suffix in (".jsonl", ".json"):
        raw = [_flatten_jsonl(json.loads(line), labels) for line in path.read_text().splitlines() if line.strip()]
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            raw = list(csv.DictReader(handle))
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use .parquet, .jsonl or .csv")
    if not raw:
        raise ValueError(f"{path}: no rows")
    missing = [key for key in ("text", "label") if key not in raw[0]]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; need text and label")
    ids = [str(r["id"]) for r in raw] if "id" in raw[0] else []
    if len(set(ids)) != len(raw):
        ids = [str(i) for i in range(len(raw))]
    default_source = f"{path.parent.name}/{path.stem}"
    return [
        {
            "id": ids[i],
            "text": str(r["text"]),
            "label": parse_label(r["label"], labels, where=f"{path} row {i}: "),
            "source": r.get("source") or default_source,
            "category": r.get("category") or None,
        }
        for i, r in enumerate(raw)
    ]


def _flatten_jsonl(record: dict, labels: tuple[str, str]) -> dict:
    """Flat {"text","label"} passes through; mlx-lm chat/completion records give the user text and the answer."""
    if "messages" in record:
        turns = {m["role"]: m["content"] for m in record["messages"]}
        return {**record, "text": turns.get("user", ""), "label": turns.get("assistant", "")}
    if "prompt" in record and "completion" in record and "label" not in record:
        return {**record, "text": record["prompt"], "label": record["completion"]}
    return record


def resolve_contract(model: str | Path | None, adapters: str | Path | None = None, contract: str | Path | None = None):
    """The contract from --contract, else the adapters dir, else the model dir; two that differ are an error."""
    if contract:
        return read_contract(contract)
    found = [(d, _maybe_contract(d)) for d in (adapters, model) if d]
    found = [(d, c) for d, c in found if c is not None]
    if not found:
        raise ValueError(
            f"no contract.json in {adapters or model}; pass a fused model or adapters dir, or point at one with "
            "--contract (e.g. --contract data/processed for a base model)"
        )
    if len(found) == 2 and found[0][1] != found[1][1]:
        raise ValueError(f"the contracts in {found[0][0]} and {found[1][0]} differ; retrain or fuse again")
    return found[0][1]


def _maybe_contract(directory) -> Contract | None:
    directory = Path(directory)
    if not (directory / "contract.json").exists() and not (directory / "manifest.json").exists():
        return None
    return read_contract(directory)
