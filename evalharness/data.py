"""Labelled rows from Parquet, JSONL (flat or mlx-lm chat/completion) or CSV, and the contract for a model.

from evalharness.data import read_labelled
rows = read_labelled("data/processed/test.parquet")   # [{"id", "text", "label", "source", "category"}, ...]
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from common.contract import Contract, read_contract
from common.jsonl import jsonl_records
from common.labels import LABEL_WORDS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "data/processed/test.parquet"
# The original project's test split; its report compares with the accuracy the original published.
ORIGINAL_ACCURACY = 0.9735


def is_original_benchmark(path: str | Path) -> bool:
    """True for the safe-guard test split that the original project reported 0.9735 accuracy on."""
    path = Path(path)
    return path.name == "test.csv" and path.parent.name == "safe-guard"


def parse_label(value, labels: tuple[str, str] = ("safe", "unsafe"), where: str = "") -> int:
    """0/1, True/False, a contract label word or a common one (common/labels.py, as prep reads them; case-insensitive)
    -> 0 safe, 1 unsafe; else an error."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        words = {**LABEL_WORDS, labels[0].lower(): 0, labels[1].lower(): 1}
        word = value.strip().lower()
        if word in words:
            return words[word]
    raise ValueError(
        f"{where}unknown label {value!r}; expected 0/1, one of {list(labels)} or a word in common/labels.py"
    )


def read_labelled(path: str | Path, labels: tuple[str, str] = ("safe", "unsafe")) -> list[dict]:
    """Read labelled rows; ids come from an `id` column when present and unique, else the row number.

    A bad row (no text or label, empty or non-string text, unknown label, broken JSON) is an error naming the
    file, the line and the field: evaluation must score every row it was given.
    """
    path = Path(path)
    if not path.exists():
        hint = " (run `invoke prep` first)" if path == DEFAULT_DATA else ""
        raise ValueError(f"{path}: no such file{hint}")
    raw = list(_records(path, labels))
    if not raw:
        raise ValueError(f"{path}: no rows")
    ids = [str(r["id"]) for _, r in raw] if all("id" in r for _, r in raw) else []
    if len(set(ids)) != len(raw):
        ids = [str(i) for i in range(len(raw))]
    default_source = f"{path.parent.name}/{path.stem}"
    rows = []
    for i, (where, r) in enumerate(raw):
        for key in ("text", "label"):
            if key not in r or r[key] is None:
                raise ValueError(f"{where}: no {key!r}; every row needs text and label")
        if not isinstance(r["text"], str) or not r["text"].strip():
            raise ValueError(f"{where}: 'text' must be a non-empty string, not {r['text']!r}; fix or remove the row")
        rows.append({
            "id": ids[i],
            "text": r["text"],
            "label": parse_label(r["label"], labels, where=f"{where}: 'label': "),
            "source": r.get("source") or default_source,
            "category": r.get("category") or None,
        })  # fmt: skip
    return rows


def _records(path: Path, labels: tuple[str, str]):
    """(where, record dict) per row, `where` being "file:line" (JSONL, CSV) or "file row N" (Parquet, JSON)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, record in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path} row {i}", record
    elif suffix in (".jsonl", ".json"):
        text = _utf8(path) if suffix == ".json" else ""
        if text.lstrip().startswith("["):
            try:
                records = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg}); fix the file") from None
            numbered = [(f"{path} row {i}", r) for i, r in enumerate(records)]
        else:
            numbered = list(jsonl_records(path))
        for where, record in numbered:
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object with text and label")
            yield where, _flatten_jsonl(record, where)
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(_utf8(path), newline=""))
        for record in reader:
            yield f"{path}:{reader.line_num}", record
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use .parquet, .jsonl or .csv")


def _utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8") from None


def _flatten_jsonl(record: dict, where: str) -> dict:
    """Flat {"text","label"} passes through; mlx-lm chat/completion records give the user text and the answer."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                      for m in messages):  # fmt: skip
            raise ValueError(f'{where}: \'messages\' must be a list of {{"role", "content"}} objects')
        turns = {m["role"]: m["content"] for m in messages}
        for role in ("user", "assistant"):
            if turns.get(role) is None:
                raise ValueError(
                    f"{where}: 'messages' has no {role!r} turn (the {'text' if role == 'user' else 'label'})"
                )
        return {**record, "text": turns["user"], "label": turns["assistant"]}
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


def write_encoded(data: str | Path | None, n: int, seed: int, out: str | Path) -> dict:
    """Encoded copies of n labelled rows (half of each label) -> JSONL for `eval --data`; returns counts per encoding.

    Each copy keeps its row's label and says where it came from: source "encoded/<encoding>", category the row's
    source. Used on the test split, it measures how a model reads requests hidden in an encoding that it never saw.
    """
    from common.encoded import encoded_copies

    if n < 1:
        raise ValueError(f"--n {n}: ask for at least 1 encoded copy (the default is 400)")
    rows = read_labelled(data or DEFAULT_DATA)
    copies = encoded_copies([(row["text"], row["label"]) for row in rows], n, seed)
    if not copies:
        raise ValueError(f"{data or DEFAULT_DATA}: no row is short enough to encode")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for i, copy in enumerate(copies):
            record = {"id": f"encoded{i}", "text": copy.text, "label": copy.label, "source": f"encoded/{copy.encoding}",
                      "category": rows[copy.row]["source"]}  # fmt: skip
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return dict(sorted(Counter(copy.encoding for copy in copies).items()))
