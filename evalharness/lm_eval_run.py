"""Run the prompt_safety lm-eval task through `lm_eval.simple_evaluate` with the MLX model class.

    python -m evalharness lm-eval --model model/fused [--adapters DIR] [--data FILE] [--limit N] [--name NAME]
writes output/lm-eval/<name>/results.json (lm-eval's results + versions) and samples.jsonl (one line per row).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from evalharness.data import DEFAULT_DATA, ROOT, resolve_contract

log = logging.getLogger(__name__)
TASKS_DIR = Path(__file__).resolve().parent / "tasks"
TASK = "prompt_safety"


@dataclass(frozen=True)
class LmEvalRun:
    """What to evaluate and where the results go."""

    model: str
    adapters: str | None = None
    contract: str | None = None  # a dir with contract.json / manifest.json, for a bare base model
    data: str | None = None  # default data/processed/test.parquet
    limit: int | None = None
    batch_size: int = 32  # rows per forward pass (length-sorted, as in serve)
    name: str | None = None
    out_root: str = str(ROOT / "output/lm-eval")


def task_version() -> float:
    """metadata.version of the prompt_safety task (bumped together with the contract version)."""
    text = (TASKS_DIR / TASK / f"{TASK}.yaml").read_text()
    # The YAML holds lm-eval's `!function` tags; read only the metadata block.
    return float(yaml.safe_load(text[text.index("metadata:") :])["metadata"]["version"])


def default_name(model: str, adapters: str | None, data: str | None) -> str:
    """`<model dir name>[+<adapters dir name>]__<data stem>`."""
    name = Path(model).name + (f"+{Path(adapters).name}" if adapters else "")
    return f"{name}__{Path(data or DEFAULT_DATA).stem}"


def run_lm_eval(run: LmEvalRun) -> dict:
    """Evaluate, write results.json + samples.jsonl, and return a compact summary."""
    import lm_eval
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    import evalharness.lm_eval_model  # noqa: F401  (registers psc-mlxlm)
    from evalharness.lm_eval_model import MODEL_NAME

    contract = resolve_contract(run.model, run.adapters, run.contract)
    model_args = {"pretrained": run.model, "batch_size": run.batch_size}
    model_args |= {k: v for k, v in (("adapter_path", run.adapters), ("contract", run.contract)) if v}
    metadata = model_args | {"data": str(run.data or DEFAULT_DATA)}
    results = lm_eval.simple_evaluate(
        model=MODEL_NAME,
        model_args=model_args,
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(TASKS_DIR), metadata=metadata),
        limit=run.limit,
        log_samples=True,
        bootstrap_iters=0,
    )
    samples = results.pop("samples")[TASK]
    out = Path(run.out_root) / (run.name or default_name(run.model, run.adapters, run.data))
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "task": TASK,
        "task_version": task_version(),
        "contract_version": contract.version,
        "model": run.model,
        "adapters": run.adapters,
        "data": str(run.data or DEFAULT_DATA),
        "limit": run.limit,
        **{k.split(",")[0]: v for k, v in results["results"][TASK].items() if k.endswith(",none")},
    }
    results["psc"] = summary
    (out / "results.json").write_text(json.dumps(results, indent=2, default=handle_non_serializable) + "\n")
    rows = [_sample_row(s) for s in sorted(samples, key=lambda s: s["doc_id"])]
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary["n"] = len(rows)
    summary["out"] = str(out)
    log.info("wrote %s", out)
    return summary


def _sample_row(sample: dict) -> dict:
    """id, label and lm-eval's choice with the log-likelihood of each label word."""
    lls = [float(r[0]) for r in sample["filtered_resps"]]
    doc = sample["doc"]
    pred = max(range(len(lls)), key=lambda i: (lls[i], -i))  # np.argmax semantics: first of equals
    return {"id": doc["id"], "label": doc["label"], "pred": pred, "loglik": lls, "source": doc["source"]}
