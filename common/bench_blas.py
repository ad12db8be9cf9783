"""Benchmark part `blas`: float32 GEMM GFLOP/s through MLX with and without the optimized BLAS, in one run.

    python -m common.bench_blas --out output/bench

Other parts import `gemm_gflops` to measure the peak in their own run (the FLOP limit they compare against).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# The shape of SmolLM2's FFN up-projection on a 512-token batch: the GEMM that dominates its compute.
SHAPE = (512, 576, 1536)


def gemm_gflops(shape: tuple[int, int, int] = SHAPE, seconds: float = 2.0) -> float:
    """Best-of-repeats float32 GEMM throughput through MLX in this process, in GFLOP/s."""
    import mlx.core as mx

    m, k, n = shape
    a = mx.random.normal((m, k))
    b = mx.random.normal((k, n))
    mx.eval(a @ b)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        reps = 4
        start = time.perf_counter()
        for _ in range(reps):
            mx.eval(a @ b)
        elapsed = time.perf_counter() - start
        best = max(best, 2 * m * k * n * reps / elapsed / 1e9)
    return best


def _measure_in_child(blas: str, seconds: float) -> dict:
    env = dict(os.environ)
    if blas == "stock":
        env["PSC_BLAS"] = "off"
    code = (
        "import json; from common.blas import ensure_fast_blas; path = ensure_fast_blas(quiet=True); "
        f"from common.bench_blas import gemm_gflops; print(json.dumps({{'gflops': gemm_gflops(seconds={seconds}), 'library': path}}))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from common.bench import write_result

    parser = argparse.ArgumentParser(prog="python -m common.bench_blas", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("output/bench"))
    parser.add_argument("--quick", action="store_true", help="shorter timing")
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else 3.0
    stock = _measure_in_child("stock", seconds)
    fast = _measure_in_child("optimized", seconds)
    ratio = fast["gflops"] / stock["gflops"] if stock["gflops"] else None
    m, k, n = SHAPE
    result = {
        "shape": {"m": m, "k": k, "n": n},
        "dtype": "float32",
        "stock_gflops": round(stock["gflops"], 2),
        "optimized_gflops": round(fast["gflops"], 2),
        "optimized_library": fast["library"],
        "speedup": round(ratio, 1) if ratio else None,
    }
    md = (
        "## blas\n\n| GEMM float32 | stock MLX | optimized BLAS | speedup |\n|---|---|---|---|\n"
        f"| {m}x{k} @ {k}x{n} | {stock['gflops']:.1f} GFLOP/s | {fast['gflops']:.1f} GFLOP/s "
        f"({Path(fast['library'] or 'none').name}) | {ratio:.1f}x |\n"
    )
    write_result(args.out, "blas", result, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
