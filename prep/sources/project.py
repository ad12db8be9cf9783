"""The data the project writes itself: every `data/builtin/*.jsonl` (fields text, label safe|unsafe, category, group).

Usage: python -c "from prep.sources import run_source; run_source('project')"

Source tag = `project/<file stem>`. A bad line is an error naming the file and line: these files are ours to fix.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from prep.rows import SAFE, UNSAFE, Row
from prep.sources.common import SourceConfig

LABELS = {"safe": SAFE, "unsafe": UNSAFE}


def read_project(builtin_dir: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """Rows of every JSONL file in the project's builtin data folder (sorted by file name)."""
    for path in sorted(Path(builtin_dir).glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg}); fix the line") from None
                text, label = rec.get("text"), LABELS.get(str(rec.get("label", "")).lower())
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"{path}:{lineno}: field 'text' missing or empty")
                if label is None:
                    raise ValueError(f"{path}:{lineno}: field 'label' is {rec.get('label')!r}; use 'safe' or 'unsafe'")
                yield Row(text, label, f"project/{path.stem}", group=rec.get("group"), category=rec.get("category"))
