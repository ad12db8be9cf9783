"""The prep stage's settings: one frozen dataclass, resolved as CLI > YAML/JSON file > these defaults.

config = resolve_config(PrepConfig, "prep.yaml", {"max_chars": 4096})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.config import parse_pairs
from common.contract import FORMATS, Contract


@dataclass(frozen=True)
class PrepConfig:
    """Where the data comes from, how it is cleaned and split, and where it goes."""

    # builtin = the registry wheels + data/builtin; also hf:OWNER/NAME[:split] and local .jsonl/.json/.csv/.parquet.
    sources: tuple[str, ...] = ("builtin",)
    format: str = "chat"  # mlx-lm JSONL layout, as in the original project
    text_col: str | None = None  # None: the first of text, prompt, content, ... present in the file
    label_col: str | None = None  # None: the first of label, labels, class, ... present in the file
    label_map: str | None = None  # extra "word=0,word=1" pairs on top of the defaults (common/labels.py)
    max_chars: int = 2048  # the original dropped longer texts; the contract truncates by tokens later anyway
    # Written into the contract: train, serve and eval keep this many text tokens (head + tail) of a longer text.
    max_text_tokens: int = Contract.max_text_tokens
    # Written into the contract: the model also sees what base64/hex/binary/ROT13/spaced-out runs decode to.
    reveal_encoded: bool = True
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, valid, test fractions of rows
    out: Path = Path("data/processed")
    cache: Path = Path("data/cache")  # pinned wheels and Hub downloads; reused, git-ignored
    skip_bad: bool = False  # skip (and count) bad rows instead of stopping at the first
    caps: str | None = None  # per-source caps for builtin, "source=N,..."; None: the sources' own defaults
    # Caps on a source's rows in the train split only (valid/test keep every row), "source=N,..."; None or "none":
    # no caps. E.g. "pyrit/jailbreak_wrapper=440,evals=2000" (two fillings per jailbreak template instead of six,
    # fewer quiz rows): tried once, not the default (README, "What we tried").
    train_caps: str | None = None
    # Near-duplicates: MinHash over character shingles of the dedup key, banded LSH, verified pairs.
    shingle_chars: int = 5  # 5-char shingles: robust to typos and small edits, still specific for short texts
    minhash_perms: int = 32  # 32 uint32 values per row: 128 MB for 1M rows, Jaccard error about +-0.07
    near_dup_threshold: float = 0.8  # estimated Jaccard at or above this: same group; same label: dropped
    keep_group_variants: bool = True  # near-duplicates inside one source group (template variants) are kept

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if not self.sources:
            raise ValueError("no sources given; pass --sources builtin or a file or hf:OWNER/NAME")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(
                f"split must be three non-negative fractions summing to 1 (e.g. 0.8,0.1,0.1), not {self.split}"
            )
        if self.max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self.contract()  # the contract's own checks, before any work
        if not 0 < self.near_dup_threshold <= 1:
            raise ValueError("near_dup_threshold must be in (0, 1]")
        if self.shingle_chars < 1 or self.minhash_perms < 4:
            raise ValueError("shingle_chars must be >= 1 and minhash_perms >= 4")
        parse_caps(self.caps, "--caps")  # malformed caps fail now, not after reading the corpus
        parse_caps(self.train_caps, "--train-caps")

    def contract(self) -> Contract:
        """The classifier contract these settings write into the manifest."""
        return Contract(format=self.format, max_text_tokens=self.max_text_tokens, reveal_encoded=self.reveal_encoded)


def parse_caps(text: str | None, flag: str) -> dict[str, int]:
    """Row caps per source from "source=N,..." (--caps, --train-caps); none for None or "none"."""
    if text is None or text.strip().lower() == "none":
        return {}
    caps = {}
    for source, value in parse_pairs(text, flag, form='SOURCE=ROWS (e.g. "evals=2000")').items():
        if not value.isdigit():
            raise ValueError(f"{flag}: {source}={value}: a cap must be a whole number of rows")
        caps[source] = int(value)
    return caps
