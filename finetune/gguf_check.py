"""Check that llama.cpp (llama-cpp-python) tokenizes and labels like the MLX model the GGUF was exported from.

    python -m finetune.gguf_check --model model/fused --gguf model/gguf/fused.f16.gguf [--n 50] [--out output/bench]

Needs the optional extra `gguf-check` (llama-cpp-python, which compiles llama.cpp on install). For each prompt text:
the full chat prompt tokenized by llama.cpp (special tokens parsed) and by our tokenizer must be equal, and so must the
user's text tokenized as plain text; then both models score the contract's prompt ids and we compare the label (the
larger of the two label tokens' logits at the end of the prompt) and P(unsafe) = softmax over those two logits.
Writes OUT/gguf.json and OUT/gguf.md; exits 1 when the check fails.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

PART = "gguf"
TEST_SPLIT = Path("data/processed/test.parquet")
FALLBACK_CSV = Path(__file__).resolve().parents[2] / "shared/datasets/safe-guard/val.csv"  # beside the checkout
# float16 weights move the two label logits by a few hundredths; P(unsafe) may differ this much at most.
P_TOLERANCE = 0.05


def load_texts(n: int) -> tuple[list[str], str]:
    """The first `n` texts of the test split (or of the safe-guard validation sample when prep has not run)."""
    if TEST_SPLIT.exists():
        import pyarrow.parquet as pq

        texts = pq.read_table(TEST_SPLIT, columns=["text"]).column("text").to_pylist()[:n]
        source = str(TEST_SPLIT)
    elif FALLBACK_CSV.exists():
        with FALLBACK_CSV.open(newline="") as f:
            texts = [row["text"] for row in csv.DictReader(f)][:n]
        source = str(FALLBACK_CSV)
    else:
        raise ValueError(f"no prompts: run prep (for {TEST_SPLIT}) or provide {FALLBACK_CSV}")
    if len(texts) < n:
        raise ValueError(f"{source} has only {len(texts)} texts, fewer than --n {n}")
    return texts, source


def find_gguf(directory: Path) -> Path:
    """The single .gguf file in `directory` (as written by `python -m finetune export-gguf`)."""
    found = sorted(directory.glob("*.gguf"))
    if len(found) != 1:
        raise ValueError(f"{directory}: expected one .gguf file, found {len(found)}; pass --gguf FILE")
    return found[0]


def load_llama(path: Path, threads: int):
    """A llama.cpp context over the GGUF with only last-token logits."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ValueError(
            "llama-cpp-python is not installed; `pip install -e '.[gguf-check]'` (it compiles llama.cpp, 10-25 min)"
        ) from exc
    if not path.exists():
        raise ValueError(f"{path} does not exist; run `python -m finetune export-gguf` first")
    return Llama(model_path=str(path), n_ctx=2048, n_batch=512, n_threads=threads, logits_all=False, verbose=False)


def llama_logits(llm, ids: list[int]) -> np.ndarray:
    """Logits after the last of `ids`, from a fresh llama.cpp context state."""
    import llama_cpp

    llm.reset()
    llm.eval(ids)
    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).copy()


def mlx_logits(model, ids: list[int]) -> np.ndarray:
    """Logits after the last of `ids` from the MLX model."""
    import mlx.core as mx

    logits = model(mx.array([ids]))[0, -1].astype(mx.float32)
    return np.array(logits)


def p_unsafe(logits: np.ndarray, label_ids: tuple[int, int]) -> float:
    """Softmax over the two label tokens' logits: the probability of the unsafe label."""
    pair = logits[list(label_ids)].astype(np.float64)
    pair -= pair.max()
    return float(np.exp(pair[1]) / np.exp(pair).sum())


def check(model_dir: Path, gguf_path: Path, n: int, threads: int, allow_default_contract: bool) -> dict:
    """Compare tokenization, labels and P(unsafe) of llama.cpp and MLX on `n` texts; return the result record."""
    from mlx_lm.utils import load

    from common.contract import encode_plain
    from finetune.gguf_export import model_contract

    contract = model_contract(model_dir, allow_default_contract)
    texts, source = load_texts(n)
    model, tokenizer = load(str(model_dir))
    llm = load_llama(gguf_path, threads)
    label_ids = contract.label_ids(tokenizer)

    rows, timings = [], {"mlx": 0.0, "llama_cpp": 0.0}
    for text in tqdm(texts, desc="gguf check", unit="prompt", file=sys.stderr):
        prompt = contract.prompt_text(tokenizer, text)
        ours_full = tokenizer.encode(prompt, add_special_tokens=False)
        theirs_full = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        ours_plain = encode_plain(tokenizer, text)
        theirs_plain = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        ids = contract.prompt_ids(tokenizer, text)  # what serve scores: plain text, truncated
        started = time.perf_counter()
        p_mlx = p_unsafe(mlx_logits(model, ids), label_ids)
        timings["mlx"] += time.perf_counter() - started
        started = time.perf_counter()
        p_cpp = p_unsafe(llama_logits(llm, ids), label_ids)
        timings["llama_cpp"] += time.perf_counter() - started
        rows.append(
            {
                "tokens_equal": ours_full == theirs_full,
                "plain_tokens_equal": ours_plain == theirs_plain,
                "n_prompt_tokens": len(ids),
                "p_unsafe_mlx": p_mlx,
                "p_unsafe_llama_cpp": p_cpp,
            }
        )
    return summarize(rows, timings, model_dir, gguf_path, source, contract)


def summarize(rows: list[dict], timings: dict, model_dir: Path, gguf_path: Path, source: str, contract) -> dict:
    """Counts, agreement and the pass/fail verdict."""
    n = len(rows)
    diffs = [abs(r["p_unsafe_mlx"] - r["p_unsafe_llama_cpp"]) for r in rows]
    agree = sum((r["p_unsafe_mlx"] > 0.5) == (r["p_unsafe_llama_cpp"] > 0.5) for r in rows)
    result = {
        "model": str(model_dir),
        "gguf": str(gguf_path),
        "gguf_mb": round(gguf_path.stat().st_size / 1e6, 1),
        "prompts": source,
        "n": n,
        "contract_version": contract.version,
        "tokenization_equal": sum(r["tokens_equal"] for r in rows),
        "plain_tokenization_equal": sum(r["plain_tokens_equal"] for r in rows),
        "label_agreement": agree,
        "unsafe_mlx": sum(r["p_unsafe_mlx"] > 0.5 for r in rows),
        "unsafe_llama_cpp": sum(r["p_unsafe_llama_cpp"] > 0.5 for r in rows),
        "p_unsafe_max_abs_diff": round(max(diffs), 5),
        "p_unsafe_mean_abs_diff": round(float(np.mean(diffs)), 5),
        "p_unsafe_tolerance": P_TOLERANCE,
        "ms_per_prompt_mlx": round(1000 * timings["mlx"] / n, 1),
        "ms_per_prompt_llama_cpp": round(1000 * timings["llama_cpp"] / n, 1),
        "rows": rows,
    }
    result["passed"] = (
        result["tokenization_equal"] == n
        and result["plain_tokenization_equal"] == n
        and agree >= n - n // 50
        and result["p_unsafe_max_abs_diff"] <= P_TOLERANCE
    )
    return result


def markdown(result: dict) -> str:
    """The gguf section of the benchmark summary."""
    n = result["n"]
    return f"""## GGUF (llama.cpp) vs MLX

{result["gguf"]} ({result["gguf_mb"]} MB) against {result["model"]} on the first {n} texts of {result["prompts"]}:
{"PASSED" if result["passed"] else "FAILED"}.

| check | result |
|---|---|
| chat prompt tokenization equal | {result["tokenization_equal"]}/{n} |
| plain text tokenization equal | {result["plain_tokenization_equal"]}/{n} |
| same label | {result["label_agreement"]}/{n} (unsafe: MLX {result["unsafe_mlx"]}, llama.cpp {result["unsafe_llama_cpp"]}) |
| P(unsafe) abs diff, max / mean | {result["p_unsafe_max_abs_diff"]} / {result["p_unsafe_mean_abs_diff"]} (tolerance {result["p_unsafe_tolerance"]}) |
| ms per prompt, MLX / llama.cpp | {result["ms_per_prompt_mlx"]} / {result["ms_per_prompt_llama_cpp"]} |
"""


def run(args: argparse.Namespace) -> int:
    """Run the check, write the result files, print the markdown; 1 if the check failed."""
    from common.bench import write_result

    gguf_path = args.gguf or find_gguf(Path("model/gguf"))
    n = 10 if args.quick else args.n
    result = check(args.model, gguf_path, n, args.threads, args.allow_default_contract)
    md = markdown(result)
    write_result(args.out, PART, result, md)
    print(md)
    log.info(
        "%d prompts: tokenization %d/%d equal, labels %d/%d equal, max |dP| %.4f -> %s",
        n, result["tokenization_equal"], n, result["label_agreement"], n, result["p_unsafe_max_abs_diff"],
        "passed" if result["passed"] else "FAILED",
    )  # fmt: skip
    return 0 if result["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    from common.cli import run_cli

    parser = argparse.ArgumentParser(prog="python -m finetune.gguf_check", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("model/fused"), help="the MLX model dir the GGUF came from")
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF file (default: the one .gguf in model/gguf)")
    parser.add_argument("--n", type=int, default=50, help="number of prompts")
    parser.add_argument("--out", type=Path, default=Path("output/bench"), help="writes OUT/gguf.json and OUT/gguf.md")
    parser.add_argument("--quick", action="store_true", help="10 prompts (for `invoke bench --quick`)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp threads")
    parser.add_argument(
        "--allow-default-contract", action="store_true", help="use the default contract for a dir without one (base)"
    )
    args = parser.parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
