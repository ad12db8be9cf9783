"""The prep pipeline: read every source, clean and deduplicate, split by group, write the outputs.

manifest = run_prep(resolve_config(PrepConfig, None, {"sources": ("data/my.csv",)}))
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from common.wheels import sha256_file
from prep.clean import CLEAN_REASONS, clean_rows
from prep.config import PrepConfig, parse_caps
from prep.readers import read_source
from prep.rows import Row
from prep.split import cap_train_rows, split_groups
from prep.write import drops_by_reason, print_summary, write_outputs

log = logging.getLogger(__name__)


def run_prep(config: PrepConfig) -> dict:
    """Build data/processed from the configured sources; print the summary table; return the manifest."""
    drops: Counter = Counter()
    streams = [open_source(spec, config, drops) for spec in config.sources]  # validates every spec up front
    corpus = clean_rows(itertools.chain.from_iterable(streams), config, drops)
    if not len(corpus):
        raise ValueError(f"no rows left from {', '.join(config.sources)} after cleaning; check the sources and columns")
    assignment = split_groups(corpus, config.split, config.seed)
    capped = cap_train_rows(corpus, assignment, parse_caps(config.train_caps, "--train-caps"), config.seed)
    drops.update(capped)
    manifest = write_outputs(corpus, assignment, config, drops, input_hashes(config))
    print_summary(manifest)
    totals, reasons = manifest["totals"], drops_by_reason(drops)
    cleaned = sum(n for reason, n in reasons.items() if reason in CLEAN_REASONS)
    if corpus.stats["rows_read"] != len(corpus) + cleaned:  # every row is kept or counted once
        raise RuntimeError(f"prep lost rows: {corpus.stats['rows_read']} read, {len(corpus)} kept, {cleaned} dropped")
    if sum(totals.values()) + sum(capped.values()) != len(corpus):
        raise RuntimeError(f"prep lost rows: {len(corpus)} kept, {sum(totals.values())} written")
    log.info(
        "prep: %d rows read, %d kept (train %d, valid %d, test %d), %d dropped while cleaning, "
        "%d by source rules, %d beyond the train caps -> %s",
        corpus.stats["rows_read"], len(corpus), totals["train"], totals["valid"], totals["test"], cleaned,
        sum(reasons.values()) - cleaned - sum(capped.values()), sum(capped.values()), config.out,
    )  # fmt: skip
    return manifest


def open_source(spec: str, config: PrepConfig, drops: Counter) -> Iterator[Row]:
    """Row iterator for one --sources entry."""
    if spec == "builtin":
        from prep.sources import DEFAULT_CAPS, read_builtin  # the registry readers (prep/sources)

        caps = None
        if config.caps:  # on top of the sources' defaults
            caps = {**DEFAULT_CAPS, **parse_caps(config.caps, "--caps")}
        return read_builtin(Path(config.cache) / "wheels", drops, config.seed, caps, max_chars=config.max_chars)
    return read_source(spec, config, drops)


def input_hashes(config: PrepConfig) -> dict:
    """sha256 of every input: local files, the pinned builtin wheels and project data; Hub specs by name."""
    inputs: dict = {}
    for spec in config.sources:
        if spec == "builtin":
            from prep.sources import DEFAULT_BUILTIN_DIR
            from prep.sources.wheels import WHEELS  # pinned and checked against sha256 when fetched

            inputs["builtin"] = {w.filename: w.sha256 for w in sorted(WHEELS.values(), key=lambda w: w.filename)}
            for path in sorted(DEFAULT_BUILTIN_DIR.glob("*.jsonl")):
                inputs["builtin"][f"data/builtin/{path.name}"] = sha256_file(path)
        elif spec.startswith("hf:"):
            inputs[spec] = "hub dataset (no file hash; pin a revision or pass a local file for reproducibility)"
        else:
            inputs[spec] = sha256_file(Path(spec))
    return inputs
