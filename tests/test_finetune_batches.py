"""The batch plan: deterministic, each example at most once per epoch, and label-balanced on request."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.data import BatchPlan


def skewed_corpus(n: int = 1024, seed: int = 0) -> tuple[list[int], list[int]]:
    """Like the real corpus: a third unsafe, and the long texts mostly unsafe (jailbreak templates)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 1 / 3).astype(int)
    lengths = np.where(labels == 1, rng.integers(20, 260, n), rng.integers(5, 60, n))
    return lengths.tolist(), labels.tolist()


def epoch(plan: BatchPlan) -> list[np.ndarray]:
    return [plan.batch(step) for step in range(plan.per_epoch)]


def test_plan_is_a_pure_function_of_seed_and_step():
    lengths, labels = skewed_corpus()
    for given in (None, labels):
        first = epoch(BatchPlan(lengths, 16, 3, 8, given))
        again = BatchPlan(lengths, 16, 3, 8, given)
        assert all(np.array_equal(again.batch(s), first[s]) for s in reversed(range(len(first))))  # any order
        used = np.concatenate(first)
        assert len(used) == len(set(used.tolist())) == 64 * 16  # each example at most once per epoch
        assert not np.array_equal(BatchPlan(lengths, 16, 3, 8, given).batch(64), first[0])  # next epoch reshuffles


def test_balanced_batches_carry_the_label_mix_at_some_padding():
    lengths, labels = skewed_corpus()
    lengths_np, labels_np = np.asarray(lengths), np.asarray(labels)
    plain, balanced = epoch(BatchPlan(lengths, 16, 0, 8)), epoch(BatchPlan(lengths, 16, 0, 8, labels))
    share = labels_np.mean()

    def unsafe_counts(batches):
        return np.array([labels_np[b].sum() for b in batches])

    def padded(batches):
        return sum(lengths_np[b].max() * len(b) for b in batches)

    # Length sorting alone groups the long unsafe texts: many single-label batches.
    assert np.sum((unsafe_counts(plain) == 0) | (unsafe_counts(plain) == 16)) >= 10
    # Balanced: every batch within a row or two of the pool's mix.
    assert np.abs(unsafe_counts(balanced) - 16 * share).max() <= 3
    assert np.std(unsafe_counts(balanced) / 16) < np.std(unsafe_counts(plain) / 16) / 3
    # Still sorted within each label, so padding grows but stays far below random batches.
    random = [np.random.default_rng(0).permutation(1024)[i : i + 16] for i in range(0, 1024, 16)]
    assert padded(plain) < padded(balanced) < padded(random)


def test_repeat_shows_the_named_sources_rows_more_often():
    from finetune.data import parse_repeat, repeat_rows

    sources = ["project/a", "project/b", "evals", "project", "projects/x"]
    rows = list(range(len(sources)))
    # A folder prefix covers its sources, not a sibling whose name merely starts alike; the longest prefix wins.
    assert repeat_rows(rows, sources, parse_repeat("project=2, project/b=3")) == [0, 0, 1, 1, 1, 2, 3, 3, 4]
    assert repeat_rows(rows, sources, parse_repeat("")) == rows
    assert parse_repeat("project/=2") == {"project": 2}


@pytest.mark.parametrize("text", ["project", "project=0", "project=two", "=2", "project=1.5"])
def test_repeat_rejects_malformed_values(text):
    from finetune.config import TrainConfig

    with pytest.raises(ValueError, match="SOURCE=TIMES"):
        TrainConfig(repeat=text)


def test_repeat_of_a_source_that_is_not_there_is_an_error(tmp_path):
    from finetune.data import load_sources, parse_repeat, repeat_rows

    with pytest.raises(ValueError, match=r"\['projekt'\], which match no train source"):
        repeat_rows([0], ["project/a"], parse_repeat("projekt=2"))
    with pytest.raises(ValueError, match="needs prep's Parquet split"):
        load_sources(tmp_path, "train")
