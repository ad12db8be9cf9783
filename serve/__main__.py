"""serve: classify texts from stdin as safe/unsafe, one JSON line out per line in, streamed and batched.

    python -m serve --model model/fused < prompts.jsonl > verdicts.jsonl
    echo "How do I pick a lock?" | python -m serve --model model/base --adapters model/adapters --output text
    python -m serve                      # on a terminal: type lines, q quits

Without --model: model/fused when it exists, else model/base + model/adapters, else model/base + model/default
(the adapter shipped in the repository, so serve works right after set-up without training).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import run_cli
from common.config import resolve_config
from serve.io import INPUT_MODES, OUTPUT_MODES

log = logging.getLogger("serve")
SHIPPED_ADAPTERS = Path("model/default")  # the default adapter committed with the repository (see README)


@dataclass(frozen=True)
class ServeConfig:
    """What `python -m serve` runs with (CLI > --config file > these defaults)."""

    model: Path | None = None  # fused model dir with contract.json, or the base model when adapters are given
    adapters: Path | None = None  # LoRA adapters dir (its contract.json is the contract)
    input: str = "auto"  # auto | jsonl | text (see serve/io.py for the auto rule)
    output: str = "jsonl"  # jsonl | text
    threshold: float | None = None  # unsafe when P(unsafe) >= it; default: the model's calibration.json, else 0.5
    batch_size: int = 32  # most texts per forward pass (also capped at 1024 padded tokens)
    max_tokens: int | None = None  # text tokens kept (head + tail); default: the contract's max_text_tokens
    workers: int | None = None  # batches run at once on the CPU, one MLX stream each; default 2 (1 on a GPU)

    def __post_init__(self) -> None:
        if self.input not in INPUT_MODES:
            raise ValueError(f"input must be one of {', '.join(INPUT_MODES)}, not {self.input!r}")
        if self.output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {', '.join(OUTPUT_MODES)}, not {self.output!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML/JSON file with ServeConfig keys (flags override it)")
    parser.add_argument("--model", type=Path, help="fused model dir (or base model dir with --adapters)")
    parser.add_argument("--adapters", type=Path, help="LoRA adapters dir holding contract.json")
    parser.add_argument("--input", choices=INPUT_MODES, help="input format (default auto: JSON objects or text)")
    parser.add_argument("--output", choices=OUTPUT_MODES, help="jsonl (default) or human-readable text")
    parser.add_argument(
        "--threshold",
        type=float,
        help="P(unsafe) at or above which the label is unsafe (default: the model's calibration.json, else 0.5)",
    )
    parser.add_argument("--batch-size", type=int, help="most texts per forward pass (32)")
    parser.add_argument("--max-tokens", type=int, help="text tokens kept, head + tail (contract's max_text_tokens)")
    parser.add_argument("--workers", type=int, help="batches run at once on the CPU (2; 1 on a GPU)")
    return parser


def choose_model(config: ServeConfig) -> tuple[Path, Path | None]:
    """The model dir and adapters dir to load, applying the defaults (and saying which on stderr)."""
    if config.model is not None:
        return config.model, config.adapters
    fused = Path("model/fused")  # relative to the working directory, like every stage's defaults
    if config.adapters is None and (fused / "config.json").exists():
        log.info("model: %s (fused)", fused)
        return fused, None
    adapters = config.adapters or next(
        (d for d in (Path("model/adapters"), SHIPPED_ADAPTERS) if (d / "adapters.safetensors").exists()),
        Path("model/adapters"),
    )
    log.info("model: model/base + adapters %s", adapters)
    return Path("model/base"), adapters


def run(config: ServeConfig) -> int:
    """Load the classifier, then run the terminal loop or stream stdin to stdout."""
    from serve.classifier import Classifier
    from serve.stream import interact, stream, summarize

    model_dir, adapters = choose_model(config)
    classifier = Classifier(
        model_dir,
        adapters,
        batch_size=config.batch_size,
        max_tokens=config.max_tokens,
        threshold=config.threshold,
        workers=config.workers,
    )
    if sys.stdin.isatty():
        return interact(classifier)
    # A window of several batches lets length-sorting cut padding; it is still small enough to stream.
    counts = stream(classifier, config.input, config.output, window=config.batch_size * 4)
    log.info(summarize(counts, classifier.contract.labels))
    if counts["interrupted"]:
        # Every finished result is written and flushed; skip interpreter teardown, which can stall behind the
        # reader thread blocked on a terminal or pipe that never closes.
        sys.stderr.flush()
        os._exit(130)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "config"}
    return run_cli(lambda: run(resolve_config(ServeConfig, args.config, overrides)))


if __name__ == "__main__":
    sys.exit(main())
