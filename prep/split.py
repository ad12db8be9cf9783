"""Group-aware, stratified, seeded split of the cleaned corpus into train/valid/test.

    assignment = split_groups(corpus, (0.8, 0.1, 0.1), seed=0)   # list of 0/1/2 per row

Rows of one group never straddle splits. Each group joins the stratum (label, source) of its first row; within a
stratum the groups are shuffled with the seed (over a sorted list, so the result never depends on hash order) and each
goes to the split furthest below its target share of the stratum's rows.
"""

from __future__ import annotations

import random
from collections import Counter

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


def cap_train_rows(corpus: Corpus, assignment: list[int], caps: dict[str, int], seed: int) -> Counter:
    """Drop train rows of a capped source beyond its cap (assignment -1); valid and test are never touched.

    Training sees less than one epoch, so the rows it gets should be diverse, not six fillings of one jailbreak
    template. Kept first: every group's first row, then every group's second row, ...; within one round the
    categories take turns (so evals keeps all its folders); ties are broken by a seeded shuffle.
    Returns the drop counts keyed "<source>:train_cap".
    """
    unknown = sorted(set(caps) - set(corpus.sources))
    if unknown:
        raise ValueError(
            f"--train-caps names source(s) {unknown} that are not in the corpus; sources: {sorted(set(corpus.sources))}"
        )
    drops: Counter = Counter()
    for source, cap in sorted(caps.items()):
        rows = [i for i in range(len(corpus)) if assignment[i] == 0 and corpus.sources[i] == source]
        if len(rows) <= cap:
            continue
        random.Random(f"{seed}:train_cap:{source}").shuffle(rows)
        in_group: Counter = Counter()
        in_category: Counter = Counter()
        order = []
        for i in rows:
            group_rank = in_group[corpus.groups[i]]
            in_group[corpus.groups[i]] += 1
            order.append((group_rank, in_category[(group_rank, corpus.categories[i])], len(order), i))
            in_category[(group_rank, corpus.categories[i])] += 1
        for *_, i in sorted(order)[cap:]:
            assignment[i] = -1
        drops[f"{source}:train_cap"] = len(rows) - cap
    return drops
