"""lm-eval's own command line, with the MLX model class available and the prompt_safety task on the include path.

    python -m evalharness.lm_eval_cli --model mlxlm --model_args pretrained=model/fused \
        --tasks prompt_safety --include_path evalharness/tasks [--metadata '{"data": "F.csv"}'] [--limit 10]
`--model mlxlm` (and `psc-mlxlm`) select evalharness.lm_eval_model.ContractMLXLM: mlx-lm's class plus adapters
(`adapter_path=DIR`), lm-eval's `device` argument accepted, and serve's exact tokenization.
"""

from __future__ import annotations

import sys

from evalharness.lm_eval_run import TASKS_DIR


def main(argv: list[str] | None = None) -> None:
    from common.blas import ensure_fast_blas

    ensure_fast_blas()  # before mlx.core is imported
    from lm_eval.__main__ import cli_evaluate

    from evalharness.lm_eval_model import MODEL_NAME

    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args[:-1]):
        if arg == "--model" and args[i + 1] == "mlxlm":
            # lm-eval's registry already holds mlx-lm's own class under "mlxlm"; use ours.
            args[i + 1] = MODEL_NAME
    if "--include_path" not in args:
        args += ["--include_path", str(TASKS_DIR)]
    sys.argv = ["lm-eval", *args]
    cli_evaluate()


if __name__ == "__main__":
    main()
