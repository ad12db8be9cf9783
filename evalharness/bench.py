"""Benchmark part `lm_eval`: our lm-eval model's batched log-likelihoods vs mlx-lm's one-prompt loop, one run.

    python -m evalharness.bench --out output/bench [--quick] [--model model/fused]

Both score the same lm-eval requests (the prompt_safety task's two choices for the first rows of the test split) on
the same loaded model: `ContractMLXLM.loglikelihood` (prefix KV once, length-sorted batches on serve's streams, one
row per prompt) and mlx-lm's `MLXLM.loglikelihood` (one unbatched forward of the whole prompt per request context).
Reports rows/s of each, the speed-up and the largest log-likelihood difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from common.bench import write_result
from common.cli import run_cli

ROWS = {"full": 300, "quick": 40}


def run_bench(out: Path, quick: bool, model: Path | None, data: Path | None) -> dict:
    from mlx_lm.evaluate import MLXLM

    from evalharness.data import DEFAULT_DATA
    from evalharness.lm_eval_model import ContractMLXLM
    from evalharness.tasks.prompt_safety.utils import load_docs

    model_dir = str(model or "model/fused")
    data_file = str(data or DEFAULT_DATA)
    docs = load_docs(pretrained=model_dir, data=data_file)["test"]
    docs = docs.select(range(min(ROWS["quick" if quick else "full"], len(docs))))
    lm = ContractMLXLM(pretrained=model_dir)
    requests = [SimpleNamespace(args=(d["prompt"], choice)) for d in docs for choice in d["choices"]]
    timings, results = {}, {}
    for name, score in (("batched", lm.loglikelihood), ("mlx_lm_loop", lambda r: MLXLM.loglikelihood(lm, r))):
        started = time.perf_counter()
        results[name] = score(requests)
        timings[name] = time.perf_counter() - started
    max_diff = max(abs(a[0] - b[0]) for a, b in zip(results["batched"], results["mlx_lm_loop"], strict=True))
    rows = len(docs)
    result = {
        "model": model_dir,
        "data": data_file,
        "rows": rows,
        "requests": len(requests),
        "batched_s": round(timings["batched"], 2),
        "mlx_lm_loop_s": round(timings["mlx_lm_loop"], 2),
        "batched_rows_per_s": round(rows / timings["batched"], 2),
        "mlx_lm_loop_rows_per_s": round(rows / timings["mlx_lm_loop"], 2),
        "speedup": round(timings["mlx_lm_loop"] / timings["batched"], 2),
        "max_abs_loglik_diff": max_diff,
        "same_greedy": [g for _, g in results["batched"]] == [g for _, g in results["mlx_lm_loop"]],
    }
    write_result(out, "lm_eval", result, to_markdown(result))
    return result


def to_markdown(r: dict) -> str:
    return "\n".join(
        [
            "## lm-eval",
            "",
            f"Model: {r['model']}; the first {r['rows']} rows of {r['data']} ({r['requests']} requests), same loaded "
            "model, one run.",
            "",
            "| log-likelihoods by | seconds | rows/s |",
            "|---|---:|---:|",
            f"| mlx-lm's loop (one prompt at a time) | {r['mlx_lm_loop_s']} | {r['mlx_lm_loop_rows_per_s']} |",
            f"| ours (prefix KV once, sorted batches, 2 streams) | {r['batched_s']} | {r['batched_rows_per_s']} |",
            "",
            f"- **{r['speedup']}x**; largest log-likelihood difference {r['max_abs_loglik_diff']:.2e}; "
            f"same greedy flags: {r['same_greedy']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalharness.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("output/bench"), help="output directory")
    parser.add_argument("--quick", action="store_true", help=f"{ROWS['quick']} rows instead of {ROWS['full']}")
    parser.add_argument("--model", type=Path, help="model dir with contract.json (default model/fused)")
    parser.add_argument("--data", type=Path, help="labelled rows (default data/processed/test.parquet)")
    args = parser.parse_args(argv)
    return run_cli(lambda: print(to_markdown(run_bench(args.out, args.quick, args.model, args.data))))


if __name__ == "__main__":
    sys.exit(main())
