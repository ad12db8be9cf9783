"""Benchmark part `serve`: serve vs the original project's way of predicting, on the same model and texts, one run.

    python -m serve.bench --out output/bench [--quick] [--model model/fused]

Measures prompts/s and p50/p95 seconds per text of (1) the original's way: one `mlx_lm.generate` call per prompt,
temperature 0.7, top-p 0.8, up to 512 new tokens; (2) the same greedy with 5 new tokens; (3) serve (library batches,
and the real `python -m serve` CLI for time to first result and peak RSS); (4) the FLOP-bound limit from a GEMM peak
measured in this run; (5) the original's way on stock MLX (PSC_BLAS=off, in a child process) on a few prompts.
The 512-token sampled runs are slow, so they use the first few texts only (counts are in the output).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.cli import run_cli
from common.contract import Contract, read_contract, write_contract

# The seed dataset's validation sample, shared next to the repository checkout.
TEXTS_CSV = Path(__file__).resolve().parents[2] / "shared/datasets/safe-guard/val.csv"
# (serve texts, original 512-token texts, greedy-5 texts, stock-MLX texts)
SIZES = {"full": (128, 8, 48, 3), "quick": (32, 2, 8, 1)}
ORIGINAL_BUDGET_S = 300  # stop a slow baseline after this long; the texts done so far count


def load_texts(n: int) -> list[str]:
    """The first n texts of the fixed validation sample (the same texts for every method)."""
    path = TEXTS_CSV
    if not path.exists():
        raise ValueError(f"{path}: the fixed benchmark texts are missing")
    with open(path, newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f) if row["text"].strip()]
    if len(texts) < n:
        raise ValueError(f"{path}: need {n} texts, found {len(texts)}")
    return texts[:n]


def bench_model_dir(model: Path | None, workdir: Path) -> tuple[Path, str]:
    """A model dir with contract.json: --model, model/fused, or model/base symlinked with a known contract."""
    if model is not None:
        return model, str(model)
    if (Path("model/fused") / "contract.json").exists():
        return Path("model/fused"), "model/fused"
    base = Path("model/base")
    if not (base / "config.json").exists():
        raise ValueError("no model/fused or model/base; run `invoke model` first")
    contract, source = Contract(), "default contract"
    for candidate in (Path("model/adapters"), Path("data/processed")):
        if (candidate / "contract.json").exists() or (candidate / "manifest.json").exists():
            contract, source = read_contract(candidate), str(candidate)
            break
    out = workdir / "base_with_contract"
    out.mkdir(parents=True, exist_ok=True)
    for path in base.iterdir():
        (out / path.name).symlink_to(path.resolve())
    write_contract(contract, out)
    return out, f"model/base (untrained) + {source}"


def time_original(model_dir: Path, texts: list[str], max_tokens: int, sampled: bool) -> dict:
    """One mlx_lm.generate call per text, as the original's xlm_lm_pred.py did."""
    import mlx.core as mx
    from mlx_lm import generate, load
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(str(model_dir))
    contract = read_contract(model_dir)
    sampler = make_sampler(temp=0.7, top_p=0.8) if sampled else make_sampler(temp=0.0)
    latencies, new_tokens = [], 0
    started = time.perf_counter()
    for index, text in enumerate(texts):
        prompt = contract.prompt_text(tokenizer, text)
        mx.random.seed(index)  # the same sampled replies in the same-BLAS and the stock-MLX runs
        t0 = time.perf_counter()
        reply = generate(model, tokenizer, prompt=prompt, max_tokens=max_tokens, sampler=sampler)
        latencies.append(time.perf_counter() - t0)
        new_tokens += len(tokenizer.encode(reply, add_special_tokens=False))
        if time.perf_counter() - started > ORIGINAL_BUDGET_S:
            break
    summary = summarize_latencies(latencies, per_text=latencies)
    return summary | {"mean_new_tokens": round(new_tokens / len(latencies), 1), "latencies_s": latencies}


def time_serve(
    model_dir: Path, texts: list[str], batch_size: int, workers: int | None = None, fast_math: bool = True
) -> dict:
    """serve's library path: encode, plan length-sorted batches, run `workers` at once; per-text latency = its group."""
    from serve.classifier import MAX_BATCH_TOKENS, Classifier, plan_batches

    clf = Classifier(model_dir, batch_size=batch_size, workers=workers, fast_math=fast_math)
    clf.score(texts[:2])  # warm up the kernels once
    started = time.perf_counter()
    rows = [clf.encode(t)[0] for t in texts]
    per_text: list[float] = []
    window = 4 * batch_size  # as `python -m serve` reads and sorts its input
    for start in range(0, len(rows), window):
        part = rows[start : start + window]
        batches = plan_batches([len(r) for r in part], batch_size, MAX_BATCH_TOKENS)
        for first in range(0, len(batches), len(clf.pool)):
            group = [[part[i] for i in batch] for batch in batches[first : first + len(clf.pool)]]
            t0 = time.perf_counter()
            clf.score_batches(group)
            per_text += [time.perf_counter() - t0] * sum(map(len, group))
    total = time.perf_counter() - started
    result = summarize_latencies([total], per_text=per_text, count=len(texts))
    result["text_tokens_mean"] = round(sum(map(len, rows)) / len(rows), 1)  # text + template suffix
    result["prefix_tokens"] = len(clf.prefix_ids)
    result["workers"] = len(clf.pool)
    return result


def time_serve_cli(model_dir: Path, texts: list[str]) -> dict:
    """The real `python -m serve`: seconds from start to the first result line, total, and peak RSS."""
    data = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)).encode()
    cmd = [sys.executable, "-m", "serve", "--model", str(model_dir)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdin.write(data)
    proc.stdin.close()
    first = proc.stdout.readline()
    first_s = time.perf_counter() - started
    lines = 1 + len(proc.stdout.read().splitlines())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first or lines != len(texts):
        raise ValueError(f"python -m serve failed (exit {proc.returncode}, {lines} lines for {len(texts)} texts)")
    total = time.perf_counter() - started
    return {
        "first_result_s": round(first_s, 2),
        "total_s_with_startup": round(total, 2),
        "prompts_per_s_with_startup": round(len(texts) / total, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def time_original_stock(model_dir: Path, n: int) -> dict:
    """The original's way in a child process on stock MLX (PSC_BLAS=off)."""
    env = dict(os.environ, PSC_BLAS="off")
    cmd = [sys.executable, "-m", "serve.bench", "--original-child", str(n), "--model", str(model_dir), "--out", "-"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"stock-MLX child failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize_latencies(totals: list[float], per_text: list[float], count: int | None = None) -> dict:
    """prompts/s over the whole run and p50/p95 seconds per text."""
    count = count or len(per_text)
    total = sum(totals)
    ordered = sorted(per_text)
    return {
        "texts": count,
        "total_s": round(total, 3),
        "prompts_per_s": round(count / total, 3),
        "p50_s": round(statistics.median(ordered), 4),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4),
    }


def run_bench(out: Path, quick: bool, model: Path | None) -> dict:
    """Run every measurement on the same model and texts and write serve.json + serve.md."""
    from mlx.utils import tree_flatten
    from mlx_lm.utils import load_model

    from common.bench import write_result
    from common.bench_blas import gemm_gflops
    from common.blas import ensure_fast_blas
    from serve.classifier import DEFAULT_BATCH_SIZE

    n_serve, n_orig, n_greedy, n_stock = SIZES["quick" if quick else "full"]
    texts = load_texts(n_serve)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, model_desc = bench_model_dir(model, Path(tmp))
        gemm_before = gemm_gflops(seconds=1.0 if quick else 2.0)
        serve = time_serve(model_dir, texts, batch_size=DEFAULT_BATCH_SIZE)
        serve_one = time_serve(model_dir, texts, batch_size=DEFAULT_BATCH_SIZE, workers=1)
        serve_mlx_math = time_serve(model_dir, texts, batch_size=DEFAULT_BATCH_SIZE, fast_math=False)
        cli = time_serve_cli(model_dir, texts)
        greedy = time_original(model_dir, texts[:n_greedy], max_tokens=5, sampled=False)
        original = time_original(model_dir, texts[:n_orig], max_tokens=512, sampled=True)
        gemm_after = gemm_gflops(seconds=1.0 if quick else 2.0)
        stock = time_original_stock(model_dir, n_stock)
        loaded = load_model(model_dir)[0]
        params = sum(v.size for _, v in tree_flatten(loaded.parameters()))
        head = loaded.model.embed_tokens.weight.size  # tied or not, the head has this many weights
        per_token = params - head - (head if getattr(loaded, "lm_head", None) is not None else 0)
    gemm = max(gemm_before, gemm_after)
    # Per text, serve runs the blocks over its text + suffix tokens (the prefix is cached once) and the vocabulary
    # head at one position; the embedding lookup costs no FLOPs. The limit counts exactly that.
    flops = 2 * per_token * serve["text_tokens_mean"] + 2 * head
    limit = gemm * 1e9 / flops
    result = {
        "model": model_desc,
        "params": params,
        "block_params": per_token,
        "blas": ensure_fast_blas(quiet=True),
        "gemm_gflops": round(gemm, 1),
        "gemm_gflops_before_after": [round(gemm_before, 1), round(gemm_after, 1)],
        "serve": serve,
        "serve_one_worker": serve_one,
        "workers_speedup": round(serve["prompts_per_s"] / serve_one["prompts_per_s"], 2),
        "serve_mlx_math": serve_mlx_math,
        "fast_math_speedup": round(serve["prompts_per_s"] / serve_mlx_math["prompts_per_s"], 2),
        "serve_cli": cli,
        "original_sampled_512": original,
        "original_greedy_5": greedy,
        "original_sampled_512_stock_mlx": stock,
        "flop_limit_prompts_per_s": round(limit, 2),
        "speedup_vs_original": round(serve["prompts_per_s"] / original["prompts_per_s"], 1),
        "speedup_vs_greedy_5": round(serve["prompts_per_s"] / greedy["prompts_per_s"], 1),
        "speedup_vs_original_stock_mlx": round(serve["prompts_per_s"] / stock["prompts_per_s"], 1),
        # The stock run's texts are the first of the same-BLAS run's texts (same seeds): the BLAS effect alone.
        "stock_vs_same_blas_same_texts": round(
            sum(stock["latencies_s"]) / sum(original["latencies_s"][: len(stock["latencies_s"])]), 2
        ),
        "fraction_of_flop_limit": round(serve["prompts_per_s"] / limit, 3),
        "targets": {"vs_original": 15, "vs_original_stock": 100, "flop_fraction": 0.4, "rss_mb": 1536, "first_s": 3},
    }
    write_result(out, "serve", result, to_markdown(result))
    return result


def to_markdown(r: dict) -> str:
    """The serve section of the benchmark summary."""

    def row(name: str, m: dict) -> str:
        return f"| {name} | {m['texts']} | {m['prompts_per_s']:.2f} | {m['p50_s']:.3f} | {m['p95_s']:.3f} |"

    cli = r["serve_cli"]
    return "\n".join(
        [
            "## serve",
            "",
            f"Model: {r['model']} ({r['params'] / 1e6:.1f}M params, float32); texts: safe-guard val.csv, same texts "
            f"for every row (slow rows use the first few). GEMM peak in this run: {r['gemm_gflops']} GFLOP/s.",
            "",
            "| method | texts | prompts/s | p50 s/text | p95 s/text |",
            "|---|---|---|---|---|",
            row("original: generate, T=0.7 top-p 0.8, ≤512 tokens, stock MLX", r["original_sampled_512_stock_mlx"]),
            row("original: generate, T=0.7 top-p 0.8, ≤512 tokens", r["original_sampled_512"]),
            row("original, greedy ≤5 tokens", r["original_greedy_5"]),
            row("serve, 1 worker (one batch at a time)", r["serve_one_worker"]),
            row("serve with MLX's own exp/SiLU/softmax kernels", r["serve_mlx_math"]),
            row(f"serve (length-sorted batches, cached prefix, {r['serve']['workers']} workers)", r["serve"]),
            f"| FLOP-bound limit (2·{r['block_params'] / 1e6:.1f}M block params·{r['serve']['text_tokens_mean']} tokens/text "
            f"+ the head once) | – | "
            f"{r['flop_limit_prompts_per_s']:.2f} | – | – |",
            "",
            f"- serve vs original (same BLAS): **{r['speedup_vs_original']}x** (target ≥15x); vs greedy-5: "
            f"{r['speedup_vs_greedy_5']}x; vs original on stock MLX: **{r['speedup_vs_original_stock_mlx']}x** "
            "(target ≥100x)",
            f"- the original's way on stock MLX took {r['stock_vs_same_blas_same_texts']}x the time of the same "
            "texts with the optimized BLAS",
            f"- serve at **{100 * r['fraction_of_flop_limit']:.0f}%** of the FLOP-bound limit (target ≥40%); "
            f"{r['serve']['workers']} workers vs 1: {r['workers_speedup']}x; fast CPU math vs MLX's kernels: "
            f"{r['fast_math_speedup']}x",
            f"- `python -m serve` CLI: first result {cli['first_result_s']} s after start (target ≤3 s), peak RSS "
            f"{cli['peak_rss_mb']} MB (target ≤1536 MB), {cli['prompts_per_s_with_startup']} prompts/s incl. startup",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="output/bench", help="output directory for serve.json and serve.md")
    parser.add_argument("--quick", action="store_true", help="fewer texts, for a fast check")
    parser.add_argument("--model", type=Path, help="model dir with contract.json (default: fused, else base)")
    parser.add_argument("--original-child", type=int, help=argparse.SUPPRESS)  # internal: stock-MLX baseline
    args = parser.parse_args(argv)
    if args.original_child:
        texts = load_texts(args.original_child)
        return run_cli(lambda: print(json.dumps(time_original(args.model, texts, 512, sampled=True))))
    return run_cli(lambda: print(to_markdown(run_bench(Path(args.out), args.quick, args.model))))


if __name__ == "__main__":
    sys.exit(main())
