"""The split training forward (frozen trunk on parallel streams + trained top) equals the plain full forward."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("streams", [1, 2])
def test_trunk_and_top_give_the_full_models_loss_and_gradients(tiny_model_dir, streams):
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm import load

    from finetune.config import TrainConfig
    from finetune.train import add_lora, make_answer_loss
    from finetune.trunk import FrozenTrunk

    mx.random.seed(1)
    model, _ = load(str(tiny_model_dir))
    layers = add_lora(model, TrainConfig(layers=1, rank=4))
    # Random nonzero LoRA weights (B starts at zero), so every path carries a gradient.
    model.update(tree_map(lambda p: mx.random.normal(p.shape) * 0.05, model.trainable_parameters()))
    n_frozen = len(model.layers) - layers
    rng = np.random.default_rng(0)
    prefix_ids = rng.integers(100, 1000, 7).tolist()
    inputs = rng.integers(100, 1000, (5, 12)).astype(np.int32)
    positions = mx.array(rng.integers(0, 12, (5, 2)).astype(np.int32))
    targets = mx.array(rng.integers(100, 1000, (5, 2)).astype(np.int32))
    mask, norm = mx.ones((5, 2)), mx.array(10.0)

    trunk = FrozenTrunk(model, n_frozen, prefix_ids, streams=streams)
    split = nn.value_and_grad(model, make_answer_loss(n_frozen))
    loss, grads = split(model, trunk.prefix_hidden, trunk(inputs), positions, targets, mask, norm)

    def full_loss(model):  # no cache, no split: the prefix repeated on every row
        rows = mx.array(np.concatenate([np.tile(prefix_ids, (5, 1)), inputs], axis=1))
        logits = model(rows)[mx.arange(5)[:, None], positions + len(prefix_ids)]
        return (nn.losses.cross_entropy(logits, targets) * mask).sum() / norm

    ref_loss, ref_grads = nn.value_and_grad(model, full_loss)(model)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-4)
    ours, ref = dict(tree_flatten(grads)), dict(tree_flatten(ref_grads))
    assert ours.keys() == ref.keys() and len(ours) > 0
    for name in ref:
        assert np.allclose(np.array(ours[name]), np.array(ref[name]), rtol=1e-3, atol=1e-5), name


def test_trunk_cache_returns_the_trunks_output_for_cached_fresh_and_mixed_batches(tiny_model_dir):
    from mlx_lm import load

    from finetune.data import Encoded, make_batch
    from finetune.trunk import FrozenTrunk, TrunkCache

    model, _ = load(str(tiny_model_dir))
    rng = np.random.default_rng(0)
    examples = [Encoded(tuple(rng.integers(100, 1000, n).tolist()), n - 1, 0) for n in (5, 9, 14, 20)]
    trunk = FrozenTrunk(model, 1, rng.integers(100, 1000, 6).tolist(), streams=2)
    keep = {e.inputs for e in examples[:3]}  # the last one is never stored
    cache = TrunkCache(trunk, keep, max_bytes=1 << 30)

    def check(chunk):
        batch = make_batch(chunk, 1)
        got, want = np.array(cache(batch.inputs, [e.inputs for e in chunk])), np.array(trunk(batch.inputs))
        assert got.shape == want.shape
        for i, e in enumerate(chunk):  # real tokens only: padding is free to differ
            assert np.allclose(got[i, : len(e.inputs)], want[i, : len(e.inputs)], atol=1e-5)

    check(examples[:2])  # fresh: computed and stored
    assert (cache.hits, cache.misses, len(cache.rows)) == (0, 2, 2)
    check([examples[3], examples[1], examples[2], examples[0]])  # mixed, and in another batch width
    assert (cache.hits, cache.misses, len(cache.rows)) == (2, 2 + 2, 3)
    check(examples[:3])  # all cached: no trunk pass
    assert cache.hits == 2 + 3
    full = TrunkCache(trunk, keep, max_bytes=1)  # the cap: the first row fills it, nothing more is added
    full(make_batch(examples[:2], 1).inputs, [e.inputs for e in examples[:2]])
    assert list(full.rows) == [examples[0].inputs]
