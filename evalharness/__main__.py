"""Evaluate a classifier: serve + metrics + report, or the prompt_safety lm-eval task, or both side by side.

python -m evalharness eval --model model/fused [--adapters DIR] [--data FILE] [--name NAME]
python -m evalharness lm-eval --model model/fused [--adapters DIR] [--data FILE] [--limit N]
python -m evalharness check --model model/fused [--data FILE] [--limit N]   # lm-eval acc == serve acc @0.5
python -m evalharness calibrate --model model/fused [--max-fpr 0.02]         # threshold on valid -> calibration.json
python -m evalharness summary                                               # the pipeline's summary table
python -m evalharness encode [--data FILE] [--n 400] [--out FILE]          # encoded copies of the test rows
"""

from __future__ import annotations

import argparse
import json

from common.cli import run_cli


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="mlx-lm model dir (fused model, or base with --adapters)")
    parser.add_argument("--adapters", help="LoRA adapters dir (with contract.json)")
    parser.add_argument("--contract", help="dir with contract.json or manifest.json when the model dir has none")
    parser.add_argument("--data", help="labelled JSONL/Parquet/CSV (default data/processed/test.parquet)")
    parser.add_argument("--name", help="output folder name (default <model>[+<adapters>]__<data stem>)")
    parser.add_argument("--limit", type=int, help="only the first N rows")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evalharness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="serve over the data, metrics, report -> output/eval/<name>/")
    _common(ev)
    ev.add_argument(
        "--threshold", type=float, help="predict unsafe when score >= this (the model's calibration, else 0.5)"
    )
    ev.add_argument("--target-fpr", type=float, default=0.01, help="report the threshold meeting this FPR (0.01)")
    ev.add_argument("--batch-size", type=int, help="passed to serve as --batch-size")
    ev.add_argument("--check-lm-eval", action="store_true", help="also run lm-eval and compare accuracies")
    lm = sub.add_parser("lm-eval", help="the prompt_safety lm-eval task -> output/lm-eval/<name>/")
    _common(lm)
    lm.add_argument(
        "--batch-size", type=int, default=32, help="rows per forward pass (length-sorted batches, as serve)"
    )
    ck = sub.add_parser("check", help="lm-eval accuracy must equal serve's accuracy at threshold 0.5 (exit 1 if not)")
    _common(ck)
    sub.add_parser("summary", help="the pipeline's summary table from the stages' files -> output/summary.md")
    cal = sub.add_parser(
        "calibrate", help="choose the threshold on the valid split -> <model or adapters>/calibration.json"
    )
    cal.add_argument("--model", required=True, help="mlx-lm model dir (fused model, or base with --adapters)")
    cal.add_argument("--adapters", help="LoRA adapters dir (with contract.json); calibration.json is written there")
    cal.add_argument(
        "--data", help="labelled validation data (default data/processed/valid.parquet; never the test split)"
    )
    cal.add_argument("--max-fpr", type=float, default=0.02, help="false-alarm rate allowed on that data (0.02)")
    enc = sub.add_parser(
        "encode",
        help="copies of labelled rows hidden in base64/hex/binary/ROT13/spaced letters -> JSONL for eval --data",
    )
    enc.add_argument("--data", help="labelled rows to encode (default data/processed/test.parquet)")
    enc.add_argument("--n", type=int, default=400, help="copies, half of each label (400)")
    enc.add_argument("--seed", type=int, default=0, help="which rows and encodings (0)")
    enc.add_argument("--out", default="output/eval/encoded_test.jsonl", help="output JSONL")
    args = parser.parse_args(argv)
    if args.command == "summary":
        from evalharness.summary import write_summary

        return run_cli(lambda: print(write_summary()), uses_mlx=False)
    if args.command == "encode":
        from evalharness.data import write_encoded

        def encode() -> None:
            print(json.dumps({"out": args.out, **write_encoded(args.data, args.n, args.seed, args.out)}))

        return run_cli(encode, uses_mlx=False)
    return run_cli(lambda: _run(args))


def _run(args) -> int:
    if args.command == "calibrate":
        from evalharness.calibrate import CalibrationRun, run_calibration

        print(json.dumps(run_calibration(CalibrationRun(args.model, args.adapters, args.data, args.max_fpr))))
        return 0
    if args.command == "lm-eval":
        from evalharness.lm_eval_run import LmEvalRun, run_lm_eval

        run = LmEvalRun(args.model, args.adapters, args.contract, args.data, args.limit, args.batch_size, args.name)
        summary = run_lm_eval(run)
        print(json.dumps(summary))
        return 0
    from evalharness.evaluate import EvalRun, check_against_lm_eval, run_eval

    run = EvalRun(args.model, args.adapters, args.contract, args.data, args.name, args.limit)
    if args.command == "check":
        return 0 if check_against_lm_eval(run)["equal"] else 1
    run = EvalRun(
        args.model, args.adapters, args.contract, args.data, args.name, args.limit,
        threshold=args.threshold, target_fpr=args.target_fpr, batch_size=args.batch_size,
        check_lm_eval=args.check_lm_eval,
    )  # fmt: skip
    run_eval(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
