"""Readers for user-given sources: local .jsonl/.json/.csv/.parquet files and Hub datasets (`hf:OWNER/NAME[:split]`).

    rows = read_source("data/my.csv", config, drops)   # Iterator[Row], source tag "local:my.csv"

Large files stream: JSONL and CSV line by line, Parquet in record batches. Bad rows (unknown label values, missing
columns, malformed lines, invalid UTF-8) raise a ValueError naming file, line and field; with `skip_bad` they are
skipped and counted in `drops` as "<source>:bad_<reason>".
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from common.config import parse_pairs
from common.labels import LABEL_WORDS
from prep.config import PrepConfig
from prep.rows import SAFE, UNSAFE, Row

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
TEXT_COLUMNS = ("text", "prompt", "content", "instruction", "question", "query", "input", "user_input", "message")
LABEL_COLUMNS = ("label", "labels", "class", "is_unsafe", "is_injection", "is_jailbreak", "unsafe", "target", "type")
_CLASS_WORDS = {"0": SAFE, "safe": SAFE, "1": UNSAFE, "unsafe": UNSAFE}


class BadRow(ValueError):
    """A row that cannot become a Row; `reason` keys its drop count."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def label_table(config: PrepConfig) -> dict[str, int]:
    """Default label words plus the config's --label-map (values 0/1/safe/unsafe)."""
    table = dict(LABEL_WORDS)  # common label words; --label-map adds to or overrides them
    for word, value in parse_pairs(config.label_map, "--label-map").items():
        if value.casefold() not in _CLASS_WORDS:
            raise ValueError(f"--label-map: {word}={value}: the value must be 0, 1, safe or unsafe")
        table[word.casefold()] = _CLASS_WORDS[value.casefold()]
    return table


def read_source(spec: str, config: PrepConfig, drops: Counter) -> Iterator[Row]:
    """Rows of one non-builtin source spec (a local file path or hf:OWNER/NAME[:split])."""
    if spec.startswith("hf:"):
        return read_hub(spec, config, drops)
    path = Path(spec)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{spec}: unknown source; use builtin, hf:OWNER/NAME[:split] or a {'/'.join(SUFFIXES)} file")
    if not path.is_file():
        raise ValueError(f"{spec}: file not found")
    return read_local(path, config, drops)


def read_local(path: Path, config: PrepConfig, drops: Counter) -> Iterator[Row]:
    """Rows of a local file, tagged `local:<file name>`."""
    records = {".jsonl": _jsonl_records, ".json": _json_records, ".csv": _csv_records, ".parquet": _parquet_records}
    where = str(path)
    return _to_rows(records[path.suffix.lower()](path), where, f"local:{path.name}", config, drops)


def read_hub(spec: str, config: PrepConfig, drops: Counter) -> Iterator[Row]:
    """Rows of a Hugging Face dataset via `datasets` (cached under <cache>/hf); split defaults to train."""
    name, _, split = spec[3:].partition(":")
    if not name:
        raise ValueError(f"{spec}: give a dataset as hf:OWNER/NAME[:split]")
    dataset = load_hub_dataset(name, split or "train", Path(config.cache) / "hf")
    records = ((i + 1, record) for i, record in enumerate(dataset))
    return _to_rows(records, spec, spec, config, drops)


def load_hub_dataset(name: str, split: str, cache_dir: Path):
    """The network edge: `datasets.load_dataset`, with a clear error when the Hub cannot be reached."""
    import datasets

    try:
        return datasets.load_dataset(name, split=split, cache_dir=str(cache_dir))
    except (ConnectionError, OSError) as exc:  # no network, no such dataset, or not in the offline cache
        raise ValueError(
            f"hf:{name}: cannot load split {split!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); check the name and your network, or download it elsewhere and pass "
            "the Parquet/CSV/JSONL file as a local source"
        ) from exc
    except ValueError as exc:  # e.g. an unknown split
        raise ValueError(f"hf:{name}: {exc}") from exc


# --- record iterators: (line or record number, dict or BadRow) -------------------------------------------------


def _jsonl_records(path: Path) -> Iterator[tuple[int, object]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, BadRow(f"invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8", "invalid_utf8")
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, BadRow(f"malformed JSON ({exc.msg} at column {exc.colno}); fix the line", "malformed")
                continue
            if not isinstance(record, dict):
                yield number, BadRow("expected a JSON object per line", "malformed")
                continue
            yield number, record


def _json_records(path: Path) -> Iterator[tuple[int, object]]:
    # A JSON document is parsed whole (use JSONL for large files); records are numbered from 1.
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg}); fix the file") from exc
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ValueError(f"{path}: expected a JSON list of objects (or an object holding exactly one such list)")
        data = lists[0]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of objects")
    for number, record in enumerate(data, 1):
        yield number, record if isinstance(record, dict) else BadRow("expected a JSON object", "malformed")


def _csv_records(path: Path) -> Iterator[tuple[int, object]]:
    csv.field_size_limit(sys.maxsize)
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip().lstrip("\ufeff") for h in header]
        start = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ValueError(f"{path}:{start}: malformed CSV ({exc}); fix the quoting") from exc
            number, start = start, reader.line_num + 1
            if not values:
                continue
            if len(values) != len(header):
                yield (
                    number,
                    BadRow(f"{len(values)} fields but the header has {len(header)}; fix the quoting", "malformed"),
                )
                continue
            yield number, dict(zip(header, values, strict=True))


def _parquet_records(path: Path) -> Iterator[tuple[int, object]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    number = 0
    for batch in parquet.iter_batches(batch_size=8192):
        for record in batch.to_pylist():
            number += 1
            yield number, record


# --- records -> rows ------------------------------------------------------------------------------------------


def _to_rows(records: Iterable[tuple[int, object]], where: str, source: str, config: PrepConfig, drops: Counter):
    labels = label_table(config)
    columns: tuple[str, str] | None = None
    for number, record in records:
        try:
            if isinstance(record, BadRow):
                raise record
            if columns is None:
                columns = _pick_columns(record, config, where)
            yield _to_row(record, columns, labels, source)
        except BadRow as bad:
            if not config.skip_bad:
                raise ValueError(f"{where}:{number}: {bad} (or pass --skip-bad to skip and count such rows)") from None
            drops[f"{source}:bad_{bad.reason}"] += 1


def _pick_columns(record: dict, config: PrepConfig, where: str) -> tuple[str, str]:
    """The text and label column names, from the config or the first known name present."""
    found = []
    for given, known, flag in (
        (config.text_col, TEXT_COLUMNS, "--text-col"),
        (config.label_col, LABEL_COLUMNS, "--label-col"),
    ):
        name = given or next((c for c in known if c in record), None)
        if name is None or name not in record:
            raise ValueError(
                f"{where}: no {'text' if flag == '--text-col' else 'label'} column"
                f"{' ' + repr(given) if given else ''} among {sorted(record)}; pass {flag} NAME"
            )
        found.append(name)
    return found[0], found[1]


def _to_row(record: dict, columns: tuple[str, str], labels: dict[str, int], source: str) -> Row:
    text_col, label_col = columns
    if text_col not in record:
        raise BadRow(f"field {text_col!r}: missing", "missing_column")
    if label_col not in record:
        raise BadRow(f"field {label_col!r}: missing", "missing_column")
    text, raw = record[text_col], record[label_col]
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadRow(f"field {text_col!r}: expected a string, got {type(text).__name__}", "malformed")
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # surrogateescape marks undecodable bytes (CSV)
        raise BadRow(f"field {text_col!r}: invalid UTF-8; re-encode the file as UTF-8", "invalid_utf8")
    label = _label(raw, labels)
    if label is None:
        shown = str(raw)[:40]
        raise BadRow(
            f'field {label_col!r}: unknown label value {shown!r}; map it with --label-map "{shown}=0" (or =1)',
            "unknown_label",
        )
    # Optional `group` (variants that must share a split) and `category` columns, as in data/builtin/*.jsonl.
    group, category = record.get("group"), record.get("category")
    return Row(
        text=text,
        label=label,
        source=source,
        group=f"{source}:{group}" if isinstance(group, str) and group.strip() else None,
        category=category if isinstance(category, str) and category.strip() else None,
    )


def _label(raw, labels: dict[str, int]) -> int | None:
    if isinstance(raw, bool):
        return UNSAFE if raw else SAFE
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if raw is None:
        return None
    return labels.get(str(raw).strip().casefold())
