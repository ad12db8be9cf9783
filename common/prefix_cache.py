"""A KV cache for the system-prompt prefix every prompt shares: run it once, broadcast it under any batch.

    caches = [PrefixCache() for _ in model.model.layers]
    model.model(prefix_ids, cache=caches)          # batch 1: stores the prefix's keys/values per layer
    hidden = model.model(batch_ids, cache=caches)  # any batch: attends to the prefix, stores nothing

Used by training (one prefix pass per step, gradients flow through it) and by serve and the lm-eval model (one
pass per process, `prefix_kv`). `output_head` is the vocabulary head they all apply to gathered positions only.
"""

from __future__ import annotations

import mlx.core as mx


class PrefixCache:
    """Per-layer keys/values of the shared prefix (batch 1), concatenated in front of every later batch."""

    def __init__(self) -> None:
        self.keys = None
        self.values = None
        self.offset = 0

    def update_and_fetch(self, keys: mx.array, values: mx.array):
        if self.keys is None:
            self.keys, self.values, self.offset = keys, values, keys.shape[2]
            return keys, values
        # Later calls leave the cache as it is, so it can be reused for every batch.
        shape = (keys.shape[0], *self.keys.shape[1:])
        keys = mx.concatenate([mx.broadcast_to(self.keys, shape), keys], axis=2)
        values = mx.concatenate([mx.broadcast_to(self.values, shape), values], axis=2)
        return keys, values

    def make_mask(self, n: int, return_array: bool = False, window_size=None):
        from mlx_lm.models.base import create_causal_mask

        if return_array or window_size is not None:
            return create_causal_mask(n, self.offset, window_size=window_size)
        # "causal" aligns the queries to the end of the keys, i.e. after the prefix.
        return "causal" if n > 1 else None


def prefix_kv(model, prefix_ids: list[int]) -> list[PrefixCache]:
    """The shared prefix's keys/values in every layer, computed once (evaluated)."""
    if not hasattr(model, "model") or not hasattr(model.model, "embed_tokens"):
        raise ValueError("serve supports llama-style mlx-lm models (model.model.embed_tokens + layers)")
    caches = [PrefixCache() for _ in model.model.layers]
    model.model(mx.array([prefix_ids], dtype=mx.int32), cache=caches)
    mx.eval([(c.keys, c.values) for c in caches])
    return caches


def output_head(model, hidden: mx.array) -> mx.array:
    """Vocabulary logits of gathered hidden rows (the head on a full sequence would cost ~20% more compute)."""
    if getattr(model, "lm_head", None) is not None:
        return model.lm_head(hidden)
    return model.model.embed_tokens.as_linear(hidden)
