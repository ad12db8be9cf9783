"""Group-aware, stratified, seeded split of the cleaned corpus into train/valid/test.

    assignment = split_groups(corpus, (0.8, 0.1, 0.1), seed=0)   # list of 0/1/2 per row

Rows of one group never straddle splits. Each group joins the stratum (label, source) of its first row; within a
stratum the groups are shuffled with the seed (over a sorted list, so the result never depends on hash order) and each
goes to the split furthest below its target share of the stratum's rows.
"""

from __future__ import annotations

import random

from prep.clean import Corpus

SPLITS = ("train", "valid", "test")


def split_groups(corpus: Corpus, fractions: tuple[float, float, float], seed: int) -> list[int]:
    """Split index (0 train, 1 valid, 2 test) of every row."""
    members: dict[str, list[int]] = {}
    for i, group in enumerate(corpus.groups):
        members.setdefault(group, []).append(i)
    strata: dict[tuple[int, str], list[str]] = {}
    for group, rows in members.items():
        first = rows[0]
        strata.setdefault((corpus.labels[first], corpus.sources[first]), []).append(group)
    assignment = [0] * len(corpus)
    for stratum in sorted(strata):
        groups = sorted(strata[stratum])
        random.Random(f"{seed}:{stratum[0]}:{stratum[1]}").shuffle(groups)
        filled = [0, 0, 0]
        for group in groups:
            size = len(members[group])
            total = sum(filled) + size
            # Deficit against the target after adding this group; ties go to the earlier split.
            choice = max(
                range(3), key=lambda s: (fractions[s] * total - filled[s], -s) if fractions[s] > 0 else (-1e18, -s)
            )
            filled[choice] += size
            for i in members[group]:
                assignment[i] = choice
    return assignment
