"""The data the project writes itself: every `data/builtin/*.jsonl` (fields text, label safe|unsafe, category, group).

Usage: python -c "from prep.sources import run_source; run_source('project')"

Source tag = `project/<file stem>`. A bad line is an error naming the file and line: these files are ours to fix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from common.jsonl import jsonl_records
from prep.rows import SAFE, UNSAFE, Row
from prep.sources.common import SourceConfig

LABELS = {"safe": SAFE, "unsafe": UNSAFE}


def read_project(builtin_dir: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """Rows of every JSONL file in the project's builtin data folder (sorted by file name)."""
    for path in sorted(Path(builtin_dir).glob("*.jsonl")):
        for where, rec in jsonl_records(path):
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: expected a JSON object with text, label, category, group")
            for key in ("group", "category"):
                if rec.get(key) is not None and not isinstance(rec[key], str):
                    raise ValueError(f"{where}: field {key!r} must be a string, not {rec[key]!r}")
            text, label = rec.get("text"), LABELS.get(str(rec.get("label", "")).lower())
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}: field 'text' missing or empty")
            if label is None:
                raise ValueError(f"{where}: field 'label' is {rec.get('label')!r}; use 'safe' or 'unsafe'")
            yield Row(text, label, f"project/{path.stem}", group=rec.get("group"), category=rec.get("category"))
