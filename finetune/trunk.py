"""The model split at the first LoRA block: a frozen trunk run without gradients, and the trained top.

    trunk = FrozenTrunk(model, n_frozen, prefix_ids, streams=2)
    hidden = trunk(inputs)                                     # (B, S, D) entering the first trained block
    logits = top_answer_logits(model, n_frozen, trunk.prefix_hidden, hidden, positions)

LoRA sits on the top `layers` blocks only, so nothing below them needs gradients. That allows two savings, both
exact: the system prompt's keys/values in the frozen blocks never change, so they are computed once per run (not
once per step); and the trunk's forward, the bulk of a step's FLOPs, runs as `streams` row slices at once, each on
its own MLX stream with its share of the BLAS threads (MLX runs a stream's element-wise ops on one thread, so one
stream leaves the second core idle between GEMMs). The top blocks then run forward and backward on the default
stream with every BLAS thread. A third saving, for inputs that pass more than once (a second epoch, the fixed
validation sample): TrunkCache keeps their trunk output.
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


class TrunkCache:
    """The trunk's output per input, kept for inputs that will pass again, so that later passes skip the trunk.

        cache = TrunkCache(trunk, keep={inputs that come back}, max_bytes=4 << 30)
        hidden = cache(batch.inputs, [e.inputs for e in examples])     # as trunk(batch.inputs)

    The trunk is frozen, so an input's hidden states are the same at every pass (up to the GEMMs' summation order at
    another batch shape), and right padding never reaches a real token through causal attention: a cached row is
    re-padded with zeros. From the second epoch on (and for the fixed validation sample from its second scoring) a
    step then runs only the trained top; the trunk is ~40% of a step here (README). A row costs its tokens x the
    hidden size x 4 bytes; rows stop being added at `max_bytes`.
    """

    def __init__(self, trunk: FrozenTrunk, keep: set, max_bytes: int):
        self.trunk, self.keep, self.max_bytes = trunk, keep, max_bytes
        self.rows: dict[tuple[int, ...], np.ndarray] = {}
        self.bytes = self.hits = self.misses = 0

    def __call__(self, inputs: np.ndarray, keys: list[tuple[int, ...]]) -> mx.array:
        cached = [self.rows.get(key) for key in keys]
        missing = [i for i, row in enumerate(cached) if row is None]
        self.hits, self.misses = self.hits + len(keys) - len(missing), self.misses + len(missing)
        if len(missing) == len(keys):
            fresh = self.trunk(inputs)
            self._store(fresh, keys)
            return fresh
        out = np.zeros((*inputs.shape, self.trunk.prefix_hidden.shape[-1]), np.float32)
        for i, row in enumerate(cached):
            if row is not None:
                out[i, : len(row)] = row
        if missing:
            fresh = self.trunk(inputs[missing])
            out[missing] = host_array(fresh)
            self._store(fresh, [keys[i] for i in missing])
        return mx.array(out).astype(self.trunk.prefix_hidden.dtype)

    def _store(self, hidden: mx.array, keys: list[tuple[int, ...]]) -> None:
        wanted = [i for i, key in enumerate(keys) if key in self.keep and key not in self.rows]
        if not wanted or self.bytes >= self.max_bytes:
            return
        host = host_array(hidden)
        for i in wanted:
            if self.bytes >= self.max_bytes:
                break
            row = host[i, : len(keys[i])].copy()  # a copy: the batch's padded array is not kept alive
            self.rows[keys[i]] = row
            self.bytes += row.nbytes


def host_array(hidden: mx.array) -> np.ndarray:
    """A float32 numpy copy (numpy has no bfloat16)."""
    return np.array(hidden.astype(mx.float32))


def top_answer_logits(model, n_frozen: int, prefix_hidden: mx.array, hidden: mx.array, positions: mx.array):
    """Logits (B, A, vocab) at the answer positions: the prefix then the batch through the trained top blocks."""
    inner = model.model
    blocks = inner.layers[n_frozen:]
    caches = [PrefixCache() for _ in blocks]
    run_blocks(inner, prefix_hidden, blocks, caches)
    hidden = inner.norm(run_blocks(inner, hidden, blocks, caches))
    index = mx.broadcast_to(positions[..., None], (*positions.shape, hidden.shape[-1]))
    return output_head(model, mx.take_along_axis(hidden, index, axis=1))
