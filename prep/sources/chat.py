"""Conversational safe sources: chitchat-dataset==0.9.0 and chatterbot-corpus==1.3.3 (all SAFE).

Usage: python -c "from prep.sources import run_source; run_source('chitchat-dataset')"

- chitchat: `chitchat_dataset/dataset.json` conversations; question-like utterances (ending in "?" or starting with a
  question word), unique, at least three words. Rule `not_question` counts the other utterances; `short` the rest.
- chatterbot: `chatterbot_corpus/data/english/*.yml`, the first (user) turn of each conversation; category = file stem.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import yaml

from prep.rows import SAFE, Row
from prep.sources.common import SourceConfig, norm_key
from prep.sources.wheels import list_members, read_member, read_text

QUESTION = re.compile(
    r"\?\s*$|^(what|who|whom|where|when|why|how|which|do|does|did|is|are|was|were|can|could|would|will|should|"
    r"have|has|any)\b",
    re.IGNORECASE,
)


def read_chitchat(wheel: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """Question-like utterances from chitchat conversations, first occurrence of each."""
    data = json.loads(read_member(wheel, "chitchat_dataset/dataset.json"))
    seen: set[str] = set()
    for conv_id in sorted(data):
        for turn in data[conv_id]["messages"]:
            for msg in turn:
                text = (msg.get("text") or "").strip()
                key = norm_key(text)
                if key in seen:
                    continue
                seen.add(key)
                if not QUESTION.search(text):
                    drops["chitchat:not_question"] += 1
                elif len(text.split()) < 3:
                    drops["chitchat:short"] += 1
                else:
                    yield Row(text, SAFE, "chitchat", category="chitchat")


def read_chatterbot(wheel: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """First turns of chatterbot's English conversations."""
    for name in list_members(wheel, "chatterbot_corpus/data/english/", ".yml"):
        doc = yaml.safe_load(read_text(wheel, name)) or {}
        for conv in doc.get("conversations") or []:
            if conv and isinstance(conv[0], str) and conv[0].strip():
                yield Row(conv[0].strip(), SAFE, "chatterbot", category=Path(name).stem)
