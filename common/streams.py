"""Independent work on several MLX streams at once, each with its share of the BLAS threads.

    pool = StreamPool(2)
    outs = pool.run(lambda rows: model(rows), [batch_a, batch_b])   # evaluated, in input order

MLX runs a stream's element-wise ops (softmax, SiLU, norms: about half the time on a 2-core CPU) on one thread, so
one stream leaves the other cores idle between GEMMs. Used by serve (concurrent batches) and training (the frozen
trunk's row slices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mlx.core as mx

from common.blas import share_cores


class StreamPool:
    """`size` streams on the default device (size 1: the default stream itself)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"workers must be at least 1, not {size}")
        device = mx.default_device()
        self.streams = [mx.new_stream(device) for _ in range(size)] if size > 1 else [mx.default_stream(device)]

    def __len__(self) -> int:
        return len(self.streams)

    def run(self, build: Callable[[object], mx.array], items: Sequence) -> list[mx.array]:
        """build(item) for each item on its own stream, all evaluated together; a lone item gets every BLAS thread."""
        if len(items) > len(self.streams):
            raise ValueError(f"{len(items)} batches for {len(self.streams)} workers")
        share_cores(len(items))
        outs = []
        for item, stream in zip(items, self.streams, strict=False):
            with mx.stream(stream):
                outs.append(build(item))
        mx.eval(outs)
        return outs
