"""Strict JSONL reading for files whose every line must be right (project data, labelled eval data, chat splits).

for where, record in jsonl_records(path):   # where = "path:line"; bad UTF-8 or JSON is a ValueError naming it
    ...
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def jsonl_records(path: str | Path) -> Iterator[tuple[str, object]]:
    """("path:line", parsed value) per non-blank line. Lines end at b"\\n" only: U+2028 is valid inside JSON strings
    (so no `splitlines()`), and 0x0A never occurs inside a UTF-8 multi-byte character."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValueError(f"{where}: invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8") from None
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); fix the line") from None
            yield where, record
