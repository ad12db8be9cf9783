"""evals==3.0.1.post1 `evals/registry/data/<folder>/**.jsonl`: user messages of quiz and task evals, SAFE.

Usage: python -c "from prep.sources import run_source; run_source('evals')"

Each line's `input` is a chat (list of role/content messages) or a string; user messages (or the string) become
rows with category = folder. Only the first `evals_lines_per_file` lines of each file are read (bounded time), unique
messages per folder are sampled down to `evals_per_folder` (seeded). Rules (counted as "evals:<rule>"):
- `excluded_folder`: folders whose user messages are attacks or attack-like (prompt injection, system-instruction
  override, cybersecurity, reverse shells, steganography, ciphers/encodings, naughty strings, make-me-say,
  sandbagging, self-prompting, human-safety) are skipped; counted once per file.
- `system_only`: a sample whose chat has no user message (the task sits in the system message).
- `non_latin`: under half the letters are Latin script (Chinese, Korean, Cyrillic, ... quiz items): the unsafe side is
  almost all Latin script, so keeping them would teach "foreign script = safe".
- `data_blob`: numbers, grids, code or symbol soup (under 60% letters or fewer than three words).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from prep.rows import SAFE, Row
from prep.sources.common import SourceConfig, is_data_blob, latin_share, norm_key
from prep.sources.wheels import list_members, open_member

DATA = "evals/registry/data/"
EXCLUDED = re.compile(
    r"inject|override|jailbreak|cyber|security|reverse-shell|stegan|naughty|base64|rot13|caesar|vigenere|cipher|"
    r"make_me_say|sandbag|self_prompting|human-safety|bugged_tools|text_compression",
    re.IGNORECASE,
)


def _user_texts(record: object) -> list[str] | None:
    """User messages of one evals sample; [] when it has only system/assistant turns; None when unreadable."""
    if not isinstance(record, dict):
        return None
    value = record.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [
            m["content"]
            for m in value
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
        ]
    return None


def read_evals(wheel: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """Sampled user messages per evals folder."""
    by_folder: dict[str, list[str]] = {}
    for name in list_members(wheel, DATA, ".jsonl"):
        folder = name[len(DATA) :].split("/")[0]
        if EXCLUDED.search(folder):
            drops["evals:excluded_folder"] += 1
            continue
        texts = by_folder.setdefault(folder, [])
        with open_member(wheel, name) as f:
            for i, raw in enumerate(f):
                if i >= config.evals_lines_per_file:
                    break
                if len(raw) > 20000:  # data dumps (e.g. diabetes records): slow to parse, never a request
                    drops["evals:data_blob"] += 1
                    continue
                try:
                    users = _user_texts(json.loads(raw))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    users = None
                if users is None:
                    drops["evals:unreadable"] += 1
                elif not users:
                    drops["evals:system_only"] += 1
                texts.extend(u.strip() for u in users or [] if u.strip())

    for folder in sorted(by_folder):
        unique: dict[str, str] = {}
        for text in by_folder[folder]:
            if latin_share(text) < 0.5:
                drops["evals:non_latin"] += 1
            elif is_data_blob(text):
                drops["evals:data_blob"] += 1
            else:
                unique.setdefault(norm_key(text), text)
        keys = sorted(unique)
        if len(keys) > config.evals_per_folder:
            drops["evals:folder_cap"] += len(keys) - config.evals_per_folder
            keys = sorted(random.Random(f"{config.seed}:evals:{folder}").sample(keys, config.evals_per_folder))
        for key in keys:
            yield Row(unique[key], SAFE, "evals", category=folder)
