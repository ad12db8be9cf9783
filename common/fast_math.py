"""Faster element-wise math for llama-style mlx-lm models on an x86 CPU: exp, SwiGLU and attention's softmax.

    from common.fast_math import use_fast_math
    use_fast_math(model)          # CPU only; same outputs within ~1e-6 relative, same gradients

PSC_FAST_MATH=off keeps MLX's own kernels (for A/B measurements, or should a model ever disagree).

Profiled on 2 cores (README, Benchmarks): MLX's CPU build has no SIMD path on x86, so every `exp` (behind SiLU,
sigmoid and softmax) runs one element at a time through a libm `fma` call, ~12 ns per element: SwiGLU took 25 of a
block's 100 ms and the attention softmax most of the rest outside the GEMMs. The same Cephes polynomial MLX uses,
written as plain multiply-adds on whole arrays, runs on MLX's vectorized binary ops instead (~4x faster). Both
functions carry their own gradients, so training (the LoRA blocks' backward) uses them too.
"""

from __future__ import annotations

import logging
import os

import mlx.core as mx

log = logging.getLogger(__name__)

LOG2_E = 1.4426950408889634
# Adding and subtracting 1.5 * 2**23 rounds a float32 to the nearest integer with two additions (no libm floor).
ROUND_MAGIC = 12582912.0
# exp(x) for x beyond +-87 is outside float32's normal range; clipping keeps the exponent bits valid.
EXP2_LIMIT = 126.0


def _exp2_parts(x: mx.array) -> tuple[mx.array, mx.array]:
    """exp(x) = poly * 2**n: the polynomial on the fraction and the float32 bits of 2**n (as int32)."""
    y = mx.clip(x * LOG2_E, -EXP2_LIMIT, EXP2_LIMIT)
    n = (y + ROUND_MAGIC) - ROUND_MAGIC
    f = y - n
    # Cephes' 2**f on [-0.5, 0.5], as in MLX's own simd::exp (relative error ~2e-7).
    p = 1.535336188319500e-4
    p = p * f + 1.339887440266574e-3
    p = p * f + 9.618437357674640e-3
    p = p * f + 5.550332471162809e-2
    p = p * f + 2.402264791363012e-1
    p = p * f + 6.931472028550421e-1
    p = p * f + 1.0
    return p, mx.left_shift(n.astype(mx.int32) + 127, 23)


_exp2_parts_any_shape = mx.compile(_exp2_parts, shapeless=True)


@mx.custom_function
def fast_exp(x: mx.array) -> mx.array:
    """exp(x) in float32 (inputs beyond +-87 saturate to 2**+-126, not inf/0)."""
    poly, bits = _exp2_parts_any_shape(x.astype(mx.float32))
    return (poly * mx.view(bits, mx.float32)).astype(x.dtype)


@fast_exp.vjp
def _fast_exp_vjp(primals, cotangent, output):
    return (cotangent * output,)


def _swiglu_from(gate: mx.array, up: mx.array, exp_minus_gate: mx.array) -> mx.array:
    return gate * up / (1.0 + exp_minus_gate)


_swiglu_any_shape = mx.compile(_swiglu_from, shapeless=True)


def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up = gate * up / (1 + exp(-gate))."""
    return _swiglu_any_shape(gate, up, fast_exp(-gate))


def softmax(scores: mx.array, axis: int = -1) -> mx.array:
    """Softmax along `axis` (the max subtracted first, as usual)."""
    shifted = scores - mx.stop_gradient(scores.max(axis=axis, keepdims=True))
    weights = fast_exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)


def attention(queries: mx.array, keys: mx.array, values: mx.array, scale: float, mask) -> mx.array:
    """softmax(q k^T * scale + mask) v for (B, heads, L, D) queries and (B, kv_heads, S, D) keys/values.

    mask: None, "causal" (queries aligned to the end of the keys, as after a cached prefix) or an additive/boolean
    array broadcastable to (B, heads, L, S).
    """
    batch, heads, length, dim = queries.shape
    kv_heads, key_length = keys.shape[1], keys.shape[2]
    group = heads // kv_heads
    # Grouped-query attention: the `group` query heads sharing a KV head become extra rows of one matmul.
    q = (queries * scale).reshape(batch, kv_heads, group * length, dim)
    scores = (q @ keys.swapaxes(-1, -2)).reshape(batch, heads, length, key_length)
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"unsupported attention mask {mask!r}")
        rows = mx.arange(key_length - length, key_length)[:, None]
        mask = rows >= mx.arange(key_length)[None]
    if mask is not None:
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, mx.array(-mx.inf, scores.dtype))
        else:
            scores = scores + mask
    weights = softmax(scores).reshape(batch, kv_heads, group * length, key_length)
    return (weights @ values).reshape(batch, heads, length, dim)


def _fast_mlp_call(self, x: mx.array) -> mx.array:
    return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))


def _fast_attention_call(self, x: mx.array, mask=None, cache=None) -> mx.array:
    """mlx-lm's llama Attention.__call__ with `attention` in place of mx.fast.scaled_dot_product_attention."""
    batch, length, _ = x.shape
    queries, keys, values = self.q_proj(x), self.k_proj(x), self.v_proj(x)
    queries = queries.reshape(batch, length, self.n_heads, -1).transpose(0, 2, 1, 3)
    keys = keys.reshape(batch, length, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
    values = values.reshape(batch, length, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
    offset = cache.offset if cache is not None else 0
    queries = self.rope(queries, offset=offset)
    keys = self.rope(keys, offset=offset)
    if cache is not None:
        keys, values = cache.update_and_fetch(keys, values)
    output = attention(queries, keys, values, self.scale, mask)
    return self.o_proj(output.transpose(0, 2, 1, 3).reshape(batch, length, -1))


_FAST_CLASSES: dict[type, type] = {}


def _fast_class(cls: type, call) -> type:
    if cls not in _FAST_CLASSES:
        _FAST_CLASSES[cls] = type(f"Fast{cls.__name__}", (cls,), {"__call__": call, "__module__": __name__})
    return _FAST_CLASSES[cls]


def use_fast_math(model, device=None) -> int:
    """Switch a llama-style model's blocks to the fast SwiGLU and attention on the CPU; returns blocks switched.

    Other architectures and other devices are left as they are (Metal's kernels are vectorized already).
    """
    from mlx_lm.models import llama

    if (device or mx.default_device()) != mx.cpu or os.environ.get("PSC_FAST_MATH") == "off":
        return 0
    switched = 0
    for block in getattr(getattr(model, "model", None), "layers", []):
        attn, mlp = getattr(block, "self_attn", None), getattr(block, "mlp", None)
        if type(attn) not in (llama.Attention, _FAST_CLASSES.get(llama.Attention)):
            continue
        if type(mlp) not in (llama.MLP, _FAST_CLASSES.get(llama.MLP)):
            continue
        attn.__class__ = _fast_class(llama.Attention, _fast_attention_call)
        mlp.__class__ = _fast_class(llama.MLP, _fast_mlp_call)
        switched += 1
    if not switched:
        log.info("fast CPU math: not a llama-style model, using MLX's own kernels")
    return switched
