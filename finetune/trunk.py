"""The model split at the first LoRA block: a frozen trunk run without gradients, and the trained top.

    trunk = FrozenTrunk(model, n_frozen, prefix_ids, streams=2)
    hidden = trunk(inputs)                                     # (B, S, D) entering the first trained block
    logits = top_answer_logits(model, n_frozen, trunk.prefix_hidden, hidden, positions)

LoRA sits on the top `layers` blocks only, so nothing below them needs gradients. That allows two savings, both
exact: the system prompt's keys/values in the frozen blocks never change, so they are computed once per run (not
once per step); and the trunk's forward, the bulk of a step's FLOPs, runs as `streams` row slices at once, each on
its own MLX stream with its share of the BLAS threads (MLX runs a stream's element-wise ops on one thread, so one
stream leaves the second core idle between GEMMs). The top blocks then run forward and backward on the default
stream with every BLAS thread.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
from mlx_lm.models.base import create_attention_mask

from common.blas import share_cores
from common.prefix_cache import PrefixCache, output_head
from common.streams import StreamPool


def run_blocks(inner, hidden: mx.array, blocks: list, caches: list[PrefixCache]) -> mx.array:
    """`hidden` through `blocks` (a slice of inner.layers) with one PrefixCache each, as the model's own loop."""
    if not blocks:
        return hidden
    mask = create_attention_mask(hidden, caches[0])
    window = getattr(inner, "sliding_window", None)
    sliding = create_attention_mask(hidden, caches[0], window_size=window) if window else None
    for block, cache in zip(blocks, caches, strict=True):
        hidden = block(hidden, sliding if getattr(block, "use_sliding", False) else mask, cache=cache)
    return hidden


class FrozenTrunk:
    """Embedding + the bottom `n_frozen` blocks, with the prefix's keys/values computed once."""

    def __init__(self, model, n_frozen: int, prefix_ids: list[int], streams: int = 1):
        self.inner = model.model
        self.blocks = self.inner.layers[:n_frozen]
        self.caches = [PrefixCache() for _ in self.blocks]
        self.prefix_hidden = run_blocks(self.inner, self.inner.embed_tokens(mx.array([prefix_ids])), self.blocks,
                                        self.caches)  # fmt: skip
        mx.eval(self.prefix_hidden, [(c.keys, c.values) for c in self.caches])
        self.pool = StreamPool(streams)

    def __call__(self, inputs: np.ndarray) -> mx.array:
        """The hidden states entering the first trained block, evaluated, without a gradient path."""
        parts = [p for p in np.array_split(inputs, len(self.pool)) if len(p)]
        out = self.pool.run(self._forward, parts)
        share_cores(1)  # the top blocks' forward and backward run alone: every core to the BLAS
        return mx.stop_gradient(out[0] if len(out) == 1 else mx.concatenate(out))

    def _forward(self, inputs: np.ndarray) -> mx.array:
        return run_blocks(self.inner, self.inner.embed_tokens(mx.array(inputs)), self.blocks, self.caches)


def top_answer_logits(model, n_frozen: int, prefix_hidden: mx.array, hidden: mx.array, positions: mx.array):
    """Logits (B, A, vocab) at the answer positions: the prefix then the batch through the trained top blocks."""
    inner = model.model
    blocks = inner.layers[n_frozen:]
    caches = [PrefixCache() for _ in blocks]
    run_blocks(inner, prefix_hidden, blocks, caches)
    hidden = inner.norm(run_blocks(inner, hidden, blocks, caches))
    index = mx.broadcast_to(positions[..., None], (*positions.shape, hidden.shape[-1]))
    return output_head(model, mx.take_along_axis(hidden, index, axis=1))
