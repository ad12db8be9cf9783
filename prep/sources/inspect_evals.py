"""inspect-evals==0.28.0: natural user requests, SAFE.

Usage: python -c "from prep.sources import run_source; run_source('inspect-evals')"

- inspect/writingbench: `writingbench/benchmark_all.jsonl` field `query`; rule `non_latin` drops the Chinese half
  (under half Latin letters); category = `domain1`. These are long writing requests (length diversity on the safe side).
- inspect/persistbench: `persistbench/benchmark_samples/*.jsonl` field `query`; category = file stem.
- inspect/freshqa: `abstention_bench/data/freshqa/FreshQA_v12182024.csv` column `question` (the header row follows a
  warning banner; the older snapshot repeats it and is not read).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from prep.rows import SAFE, Row
from prep.sources.common import SourceConfig, latin_share
from prep.sources.wheels import list_members, read_text

BASE = "inspect_evals/"


def read_inspect(wheel: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """writingbench (English), persistbench queries and FreshQA questions."""
    for line in read_text(wheel, BASE + "writingbench/benchmark_all.jsonl").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        text = (rec.get("query") or "").strip()
        if latin_share(text) < 0.5:
            drops["inspect/writingbench:non_latin"] += 1
        elif text:
            yield Row(text, SAFE, "inspect/writingbench", category=rec.get("domain1"))

    for name in list_members(wheel, BASE + "persistbench/benchmark_samples/", ".jsonl"):
        for line in read_text(wheel, name).splitlines():
            if line.strip():
                text = (json.loads(line).get("query") or "").strip()
                if text:
                    yield Row(text, SAFE, "inspect/persistbench", category=Path(name).stem)

    rows = list(csv.reader(io.StringIO(read_text(wheel, BASE + "abstention_bench/data/freshqa/FreshQA_v12182024.csv"))))
    header = next((i for i, r in enumerate(rows) if "question" in r), None)
    if header is None:
        raise ValueError("inspect-evals FreshQA csv: no header row with a 'question' column; is this the pinned wheel?")
    col = rows[header].index("question")
    for r in rows[header + 1 :]:
        if len(r) > col and r[col].strip():
            yield Row(r[col].strip(), SAFE, "inspect/freshqa", category="freshqa")
