"""The fast CPU math (common/fast_math.py) gives MLX's own results and gradients, alone and inside a model."""

from __future__ import annotations

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")


def test_fast_exp_matches_exp_and_saturates_instead_of_overflowing():
    from common.fast_math import fast_exp

    x = mx.linspace(-80, 80, 20001)
    ours, ref = np.array(fast_exp(x)), np.array(mx.exp(x))
    assert np.max(np.abs(ours - ref) / ref) < 1e-6
    extremes = np.array(fast_exp(mx.array([-1e4, -200.0, -mx.inf, 200.0, 1e4])))
    assert np.all(np.isfinite(extremes))
    assert extremes[0] < 1e-37 and extremes[2] < 1e-37 and extremes[3] > 1e37


def test_activation_softmax_and_their_gradients_match_mlx():
    import mlx.nn as nn

    from common.fast_math import softmax, swiglu

    mx.random.seed(0)
    gate, up = mx.random.normal((4, 7, 33)) * 6, mx.random.normal((4, 7, 33))
    scores = mx.random.normal((2, 3, 5, 9)) * 10
    assert np.allclose(swiglu(gate, up), nn.silu(gate) * up, rtol=1e-5, atol=1e-6)
    assert np.allclose(softmax(scores), mx.softmax(scores, axis=-1), rtol=1e-5, atol=1e-7)

    weights = mx.random.normal(scores.shape)
    ours = mx.grad(lambda g, u: (swiglu(g, u) * up).sum(), argnums=(0, 1))(gate, up)
    ref = mx.grad(lambda g, u: (nn.silu(g) * u * up).sum(), argnums=(0, 1))(gate, up)
    for a, b in zip(ours, ref, strict=True):
        assert np.allclose(a, b, rtol=1e-4, atol=1e-5)
    ours = mx.grad(lambda s: (softmax(s) * weights).sum())(scores)
    ref = mx.grad(lambda s: (mx.softmax(s, axis=-1) * weights).sum())(scores)
    assert np.allclose(ours, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mask", [None, "causal", "array"])
def test_attention_matches_mlx_fast_sdpa_with_grouped_heads_and_a_prefix(mask):
    from common.fast_math import attention

    mx.random.seed(1)
    # 6 query heads over 2 KV heads; 5 queries after a 4-token prefix (keys are longer than queries).
    q, k, v = mx.random.normal((3, 6, 5, 8)), mx.random.normal((3, 2, 9, 8)), mx.random.normal((3, 2, 9, 8))
    if mask == "array":
        mask = mx.where(mx.random.uniform(shape=(5, 9)) < 0.3, -mx.inf, 0.0)
        mask[:, 0] = 0.0  # every query keeps at least one key
    ours = attention(q, k, v, 0.35, mask)
    ref = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.35, mask=mask)
    assert np.allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_a_switched_model_gives_the_same_logits_and_lora_gradients(tiny_model_dir):
    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm import load

    from common.fast_math import use_fast_math
    from common.prefix_cache import output_head, prefix_kv
    from finetune.config import TrainConfig
    from finetune.train import add_lora

    models = []
    for fast in (False, True):
        model, _ = load(str(tiny_model_dir))
        mx.random.seed(2)
        add_lora(model, TrainConfig(layers=1, rank=4))
        model.update(tree_map(lambda p: mx.random.normal(p.shape) * 0.05, model.trainable_parameters()))
        if fast:
            assert use_fast_math(model) == len(model.layers)
        models.append(model)
    stock, fast = models
    assert type(fast.layers[0].mlp).__name__ == "FastMLP" and type(stock.layers[0].mlp).__name__ == "MLP"

    rng = np.random.default_rng(0)
    prefix = rng.integers(100, 1000, 6).tolist()
    rows = mx.array(rng.integers(100, 1000, (4, 11)).astype(np.int32))
    targets = mx.array(rng.integers(100, 1000, (4,)).astype(np.int32))

    def loss(model):
        hidden = model.model(rows, cache=prefix_kv(model, prefix))
        return nn.losses.cross_entropy(output_head(model, hidden[:, -1]), targets).mean()

    (ref_loss, ref_grads), (our_loss, our_grads) = (nn.value_and_grad(m, loss)(m) for m in (stock, fast))
    assert our_loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    ref, ours = dict(tree_flatten(ref_grads)), dict(tree_flatten(our_grads))
    assert ref.keys() == ours.keys() and ref
    for name in ref:
        assert np.allclose(ours[name], ref[name], rtol=1e-3, atol=1e-6), name


def test_other_devices_and_architectures_keep_mlx_kernels(tiny_model_dir, monkeypatch):
    from mlx_lm import load

    from common.fast_math import use_fast_math

    model, _ = load(str(tiny_model_dir))
    assert use_fast_math(model, device=mx.Device(mx.gpu)) == 0
    assert type(model.layers[0].mlp).__name__ == "MLP"
    assert use_fast_math(object()) == 0
    monkeypatch.setenv("PSC_FAST_MATH", "off")
    assert use_fast_math(model) == 0
    monkeypatch.delenv("PSC_FAST_MATH")
    assert use_fast_math(model) == len(model.layers)
    assert use_fast_math(model) == len(model.layers)  # switching twice is harmless
