"""LoRA training of the classifier through mlx-lm's model, LoRA layers and optimizers (no CLI shell-out).

    python -m finetune train [--config MY.yaml] [--iters 600] [--resume]

Why it is fast on a CPU (see the README's sweep): float32 through the optimized BLAS; LoRA only on the top
`layers` blocks, so the backward pass stops there and the frozen trunk below runs without a gradient graph, as
`trunk_streams` row slices at once (finetune/trunk.py); the system-prompt prefix (identical for every text) runs
at batch 1 and its keys/values are broadcast to the batch, which is exact in forward and gradient: once per run
in the frozen blocks, once per step in the trained ones; logits only at the answer positions (the 49k-word head
is a fifth of the model's FLOPs per token); batches sorted by length inside shuffled pools.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from common.calibration import CALIBRATION
from common.config import config_dict, write_config
from common.contract import Contract, read_contract, write_contract
from common.encoded import encoded_copies
from common.fast_math import use_fast_math
from common.model_dir import require_model_dir
from finetune.average import EMA_FILE, WeightAverage
from finetune.config import RUN_FIELDS, TrainConfig
from finetune.data import (
    BatchPlan,
    Encoded,
    encode_examples,
    eval_sample,
    load_sources,
    load_split,
    make_batch,
    parse_repeat,
    repeat_rows,
    shard,
)
from finetune.schedule import (
    CHECK_EVERY,
    MIN_STEPS_MEASURED,
    UNMEASURED_STEPS,
    VALIDATION_SHARE,
    Schedule,
    replanned_end,
    steps_that_fit,
)
from finetune.selection import is_better, keeps_newer
from finetune.trunk import FrozenTrunk, TrunkCache, top_answer_logits

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
ADAPTERS = "adapters.safetensors"
METRICS = "metrics.jsonl"


def make_answer_loss(n_frozen: int):
    """Cross-entropy summed over the answer tokens, divided by the GLOBAL batch's answer-token count.

    Its inputs are the frozen trunk's outputs (finetune/trunk.py): the prefix's hidden states and the batch's.
    """

    def answer_loss(model, prefix_hidden, hidden, positions, targets, mask, norm) -> mx.array:
        logits = top_answer_logits(model, n_frozen, prefix_hidden, hidden, positions)
        return (nn.losses.cross_entropy(logits, targets) * mask).sum() / norm

    return answer_loss


def add_lora(model, config: TrainConfig) -> int:
    """Freeze the model and put LoRA on the top `layers` blocks (mlx-lm's own LoRA layers); return the count."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    n_layers = len(model.layers)
    layers = n_layers if config.layers == -1 else config.layers
    if layers > n_layers:
        raise ValueError(f"layers={layers} but the model has only {n_layers} blocks; use -1 for all")
    model.freeze()
    linear_to_lora_layers(model, layers, lora_parameters(config))
    if not tree_flatten(model.trainable_parameters()):
        names = sorted({name.split("layers.0.", 1)[1] for name, _ in model.named_modules() if "layers.0." in name})
        raise ValueError(
            f"keys {list(config.keys)} matched no linear layer, so there is nothing to train; keys are module "
            f"paths inside a block such as {[n for n in names if n.endswith('proj')][:4]} ([] = every linear)"
        )
    return layers


def lora_parameters(config: TrainConfig) -> dict:
    """The `lora_parameters` entry of mlx-lm's adapter_config.json."""
    params = {"rank": config.rank, "scale": config.scale, "dropout": config.dropout}
    if config.keys:
        params["keys"] = list(config.keys)
    return params


def make_optimizer(config: TrainConfig) -> tuple[optim.Optimizer, Schedule]:
    """Adam, and its rate schedule: linear warm-up, then cosine decay to min_lr_ratio * learning_rate.

    The loop sets the rate before each update (rather than handing mlx the schedule), so that the time cap can move
    the schedule's end (finetune/schedule.py).
    """
    schedule = Schedule(config.learning_rate, config.warmup, config.iters, config.min_lr_ratio)
    return optim.Adam(learning_rate=schedule(0)), schedule


def evaluate(model, cache: TrunkCache, examples: list[Encoded], label_ids, answer_width: int, world):
    """Loss per answer token and label accuracy (argmax of the two label tokens) over this rank's shard, summed;
    and each row's summed answer loss (every rank gets all rows), for the paired choice of weights to keep."""
    model.eval()
    trunk = cache.trunk
    mine = shard(np.argsort([len(e.suffix) for e in examples], kind="stable"), world.rank(), world.size())
    totals = mx.zeros((3,))  # loss sum, answer tokens, correct
    rows = np.zeros(len(examples), np.float32)
    labels_idx = mx.array(label_ids)
    for start in range(0, len(mine), 32):
        idx = mine[start : start + 32]
        chunk = [examples[i] for i in idx]
        batch = make_batch(chunk, answer_width)
        hidden = cache(batch.inputs, [e.inputs for e in chunk])
        logits = top_answer_logits(model, len(trunk.blocks), trunk.prefix_hidden, hidden, mx.array(batch.positions))
        mask = mx.array(batch.mask)
        row_ce = (nn.losses.cross_entropy(logits, mx.array(batch.targets)) * mask).sum(axis=1)
        pred = mx.argmax(logits[:, 0, :][:, labels_idx], axis=-1)
        correct = (pred == mx.array(batch.labels)).sum()
        totals = totals + mx.stack([row_ce.sum(), mask.sum(), correct.astype(mx.float32)])
        mx.eval(totals, row_ce)
        rows[idx] = np.array(row_ce)
    if world.size() > 1:
        totals = mx.distributed.all_sum(totals, stream=mx.cpu)
        rows = np.array(mx.distributed.all_sum(mx.array(rows), stream=mx.cpu))  # zeros outside each rank's shard
    loss_sum, tokens, correct = totals.tolist()
    model.train()
    return {"val_loss": loss_sum / max(tokens, 1), "val_accuracy": correct / len(examples)}, rows


def prepare(config: TrainConfig):
    """Load the model, contract and data; returns what the loop needs."""
    from mlx_lm import load

    contract = read_contract(config.data)
    model, tokenizer = load(str(require_model_dir(config.model, "run `invoke model` first")))
    use_fast_math(model)  # vectorized exp for SwiGLU and softmax on the CPU, with its own gradient
    dtypes = {v.dtype for _, v in tree_flatten(model.parameters())}
    if dtypes != {mx.float32}:
        log.warning("model weights are %s; float32 is much faster on the CPU (bf16/f16 skip the BLAS)", dtypes)
    prefix, _ = contract.prompt_parts(tokenizer)
    train_rows, valid_rows = (load_split(config.data, split, contract.labels) for split in ("train", "valid"))
    n_copies = config.encoded_copies
    if n_copies and not contract.reveal_encoded:  # without reveal's decoded part a copy is only noise
        log.warning("no encoded copies: %s was prepared without --reveal-encoded (prep's default)", config.data)
        n_copies = 0
    copies = [(c.text, c.label) for c in encoded_copies(train_rows, n_copies, config.seed)]
    if copies:
        log.info("adding %d encoded copies of train rows (base64, hex, binary, ROT13, spaced letters)", len(copies))
    repeat = parse_repeat(config.repeat)
    if repeat:  # more passes over the sources the model learns least from one look (README, run 28)
        train_rows = repeat_rows(train_rows, load_sources(config.data, "train"), repeat)
    train_rows += copies  # the same request hidden in an encoding: judge it by reveal's decoded part
    sample = eval_sample(len(valid_rows), config.eval_samples, config.seed)
    train = encode_examples(train_rows, tokenizer, contract)
    valid = encode_examples([valid_rows[i] for i in sample], tokenizer, contract)
    label_ids = contract.label_ids(tokenizer)
    return model, contract, prefix, len(copies), train, valid, label_ids


def write_run_files(config: TrainConfig, contract: Contract, layers: int) -> None:
    """train_config.json, mlx-lm's adapter_config.json and contract.json beside the adapters."""
    out = Path(config.adapters)
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / "train_config.json")
    adapter_config = {
        "fine_tune_type": "lora",
        "num_layers": layers,
        "lora_parameters": lora_parameters(config),
        "model": str(config.model),
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
    write_contract(contract, out)


def run_training(config: TrainConfig, resume: bool = False) -> dict:
    """Train, evaluating every `eval_every` steps; keeps the best adapters; returns the summary dict."""
    world = mx.distributed.init()
    rank, size = world.rank(), world.size()
    if config.batch_size % size:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the number of processes ({size})")
    out = Path(config.adapters)
    state = read_checkpoint(out, config) if resume else None
    if resume and state is None:
        raise ValueError(f"{out}/{CHECKPOINT}: no checkpoint to resume from; run without --resume")

    mx.random.seed(config.seed)
    model, contract, prefix_ids, n_copies, train, valid, label_ids = prepare(config)  # checks model and data first
    if not resume and (out / CHECKPOINT).exists() and rank == 0:
        shutil.rmtree(out / CHECKPOINT)  # a fresh run must not be resumed into by mistake later
    if not resume and rank == 0:
        (out / CALIBRATION).unlink(missing_ok=True)  # chosen for the old weights: stale once training starts
    layers = add_lora(model, config)
    optimizer, schedule = make_optimizer(config)
    optimizer.init(model.trainable_parameters())
    if state is not None:
        restore_checkpoint(out, model, optimizer)
        schedule.load(state.get("schedule"))
        # The data order is a function of (seed, step); the MLX RNG (LoRA dropout only) is re-derived from both.
        mx.random.seed(config.seed + state["step"])
    average = WeightAverage(config.ema, model) if config.ema else None
    if average and state is not None:
        average.load(out / CHECKPOINT / EMA_FILE)
    if rank == 0:
        write_run_files(config, contract, layers)
    answer_width = max(e.answer_len for e in train + valid)
    n_frozen = len(model.layers) - layers
    trunk = FrozenTrunk(model, n_frozen, prefix_ids, streams=config.trunk_streams)
    labels = [e.label for e in train] if config.balance_labels else None
    plan = BatchPlan([len(e.suffix) for e in train], config.batch_size, config.seed, config.pool_batches, labels)
    loss_and_grad = nn.value_and_grad(model, make_answer_loss(n_frozen))
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    log.info(
        "training %d examples (%d per epoch batches), %d valid, LoRA rank %d on top %d of %d blocks: %.2fM params",
        len(train), plan.per_epoch, len(valid), config.rank, layers, len(model.layers), trainable / 1e6,
    )  # fmt: skip

    def step(prefix_hidden, hidden, positions, targets, mask, norm):
        loss, grads = loss_and_grad(model, prefix_hidden, hidden, positions, targets, mask, norm)
        if size > 1:
            grads = sum_across(grads)
            loss = mx.distributed.all_sum(loss, stream=mx.cpu)
        optimizer.update(model, grads)
        return loss

    compiled = [model.state, optimizer.state]
    if config.compile:
        step = mx.compile(step, inputs=compiled, outputs=compiled)

    progress = state or {"step": 0, "best": None, "best_step": None, "bad_evals": 0, "elapsed": 0.0}
    metrics = MetricsLog(out / METRICS, rank == 0, truncate_after=progress["step"] if state else -1)
    started = time.perf_counter() - progress["elapsed"]
    first = progress["step"]
    cache = make_trunk_cache(trunk, plan, train, valid, range(first, config.iters), world, config)

    eval_seconds = [0.0, 0.0]  # the longest validation so far (the stop rule keeps room for one more), the last one
    fit = config.fit_schedule and config.max_seconds > 0
    if fit:  # each step's padded tokens (the plan is fixed), to foresee whether the steps left fit the time left
        step_cost = np.array(
            [len(b) * max(len(train[i].suffix) for i in b) for b in map(plan.batch, range(config.iters))]
        )
        valid_cost = sum(len(e.suffix) for e in valid)

    def run_eval(at: int) -> bool:
        """Evaluate, keep the newest adapters unless the kept ones are measurably better (finetune/selection.py);
        return whether patience ran out (evaluations without a new lowest loss)."""
        tic = time.perf_counter()
        with average.swapped_in(model) if average else nullcontext():  # with EMA on, the average is what is kept
            result, rows = evaluate(model, cache, valid, label_ids, answer_width, world)
            eval_seconds[1] = time.perf_counter() - tic
            eval_seconds[0] = max(eval_seconds[0], eval_seconds[1])
            kept, kept_step = progress["best"], progress["best_step"]
            keep = keeps_newer(result, rows, kept, progress.get("best_rows"), config.select_by, config.select_margin)
            if keep:
                progress.update(best=result, best_step=at, best_rows=rows.tolist())
                if rank == 0:
                    save_adapters(model, out / ADAPTERS)
            lowest = progress.get("lowest", kept)  # a checkpoint from before "lowest" was saved kept the lowest
            if is_better(result, lowest, config.select_by):
                progress.update(lowest=result, bad_evals=0)
            else:
                progress["bad_evals"] += 1
        metrics.write({"step": at, **result, "best": keep, "elapsed": time.perf_counter() - started})
        note = ""
        if keep and kept is not None and not is_better(result, kept, config.select_by):
            note = f" (kept: within {config.select_margin:g} standard errors of step {kept_step}'s)"
        elif keep:
            note = " (best)"
        log.info("step %d: val_loss %.4f val_accuracy %.4f%s", at, result["val_loss"], result["val_accuracy"], note)
        return config.patience > 0 and progress["bad_evals"] >= config.patience

    from tqdm import tqdm

    bar = tqdm(total=schedule.end, initial=first, desc="train", disable=rank != 0, file=sys.stderr, leave=False)
    stop_reason = "iters"
    if first == 0 and config.eval_first and run_eval(0):
        stop_reason = "patience"
    window_tokens, window_time, slowest = 0, 0.0, 0.0
    # The time cap's measure: this process's steps after its first (warm-up) ones, all of their time but validations.
    measured_from, measured_cost, eval_spent = 0.0, 0, 0.0
    model.train()
    at = first
    while at < schedule.end and stop_reason == "iters":
        indices = plan.batch(at)
        global_examples = [train[i] for i in indices]
        norm = float(sum(e.answer_len for e in global_examples))
        mine = [global_examples[i] for i in shard(np.arange(len(indices)), rank, size)]
        batch = make_batch(mine, answer_width)
        tic = time.perf_counter()
        hidden = cache(batch.inputs, [e.inputs for e in mine])
        optimizer.learning_rate = schedule(at)
        loss = step(trunk.prefix_hidden, hidden, mx.array(batch.positions), mx.array(batch.targets),
                    mx.array(batch.mask), mx.array(norm))  # fmt: skip
        at += 1
        if average:
            average.update(model, at)
        mx.eval(loss, model.trainable_parameters(), optimizer.state, average.arrays() if average else [])
        took = time.perf_counter() - tic
        seq_tokens = sum(len(e.suffix) for e in global_examples) + len(indices) * len(prefix_ids)
        window_tokens, window_time = window_tokens + seq_tokens, window_time + took
        lr = float(optimizer.learning_rate.item())
        metrics.write({"step": at, "loss": loss.item(), "lr": lr, "tokens": seq_tokens, "seconds": took})
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{window_tokens / window_time:.0f}")
        if at == first + UNMEASURED_STEPS:
            measured_from, eval_spent = time.perf_counter(), 0.0
        elif fit and at > first + UNMEASURED_STEPS:
            measured_cost += int(step_cost[at - 1])
        slowest = max(slowest, took)
        measured = at - first - UNMEASURED_STEPS
        if fit and measured >= MIN_STEPS_MEASURED and at % CHECK_EVERY == 0 and at < schedule.end:
            # Move the schedule's end to the last step that fits the time left, so that the decay completes instead
            # of being cut. Validations cost what the last one did (the first also runs the frozen blocks, which the
            # trunk cache then keeps).
            rate = (time.perf_counter() - measured_from - eval_spent) / measured_cost  # seconds per padded token
            seconds_left = config.max_seconds - (time.perf_counter() - started)
            validation = eval_seconds[1] or VALIDATION_SHARE * rate * valid_cost
            fitting = steps_that_fit(at, config.iters, step_cost, rate, config.eval_every, validation, seconds_left)
            end = from_rank0(replanned_end(schedule, at, fitting) or 0, world)
            if end and end != schedule.end:
                log.info(
                    "time cap: at step %d, %.0f s left (%.2f ms per padded token, %.0f s per validation): the schedule"
                    " now ends at step %d of %d, where its decay completes",
                    at, seconds_left, 1000 * rate, validation, end, config.iters,
                )  # fmt: skip
                schedule.replan(at, end)
                bar.total = end
                bar.refresh()
        # Stop early enough that the next step (as slow as the slowest so far: a batch of long texts takes ~5x a
        # short one) and the closing validation still fit in max_seconds: the safety net when the estimate is off.
        if config.max_seconds and time.perf_counter() - started + slowest + eval_seconds[0] >= config.max_seconds:
            stop_reason = "max_seconds"
        if size > 1 and config.max_seconds:  # every rank takes rank 0's decision, made on its own clock
            stop_reason = "max_seconds" if from_rank0(stop_reason == "max_seconds", world) else stop_reason
        if at % config.eval_every == 0 or at == schedule.end or stop_reason != "iters":
            eval_tic = time.perf_counter()
            if run_eval(at):
                stop_reason = "patience"
            progress["step"], progress["elapsed"] = at, time.perf_counter() - started
            progress["schedule"] = schedule.state()
            if rank == 0:
                write_checkpoint(out, model, optimizer, progress, config, average)
            eval_spent += time.perf_counter() - eval_tic
    bar.close()
    if stop_reason == "iters" and at < config.iters:
        stop_reason = "max_seconds"  # the schedule was shortened to fit the cap
    elapsed = time.perf_counter() - started
    if cache.hits:
        log.info("trunk cache: %d of %d trunk passes skipped, %d inputs kept (%.0f MB)", cache.hits,
                 cache.hits + cache.misses, len(cache.rows), cache.bytes / 2**20)  # fmt: skip
    summary = {
        "steps": at,
        "stop": stop_reason,
        "max_seconds": config.max_seconds,
        "iters": config.iters,
        "schedule_end": schedule.end,
        "train_examples": len(train),
        "encoded_copies": n_copies,
        "seconds": round(elapsed, 1),
        "tokens_per_second": round(window_tokens / window_time, 1) if window_time else None,
        "best_step": progress["best_step"],
        "trunk_passes_skipped": cache.hits,
        **{k: round(v, 4) for k, v in (progress["best"] or {}).items()},
        "processes": size,
        "adapters": str(out),
    }
    if rank == 0:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_curve(out / METRICS, out / "loss_curve.png")
    return summary


def make_trunk_cache(trunk, plan: BatchPlan, train, valid, steps: range, world, config: TrainConfig) -> TrunkCache:
    """A TrunkCache for the inputs this rank will read again: train rows planned twice or more within `steps`
    (none in under an epoch, unless rows repeat), and the validation sample (scored at every validation)."""
    keep = set()
    if config.trunk_cache_gb:
        seen = set()
        for at in steps:
            indices = plan.batch(at)
            for key in (train[indices[j]].inputs for j in shard(np.arange(len(indices)), world.rank(), world.size())):
                (keep if key in seen else seen).add(key)
        if keep:
            mb = sum(map(len, keep)) * trunk.prefix_hidden.shape[-1] * 4 / 2**20
            log.info("trunk cache: %d train inputs come back within the run (%.0f MB, cap %.1f GB)", len(keep), mb,
                     config.trunk_cache_gb)  # fmt: skip
        keep |= {e.inputs for e in valid}
    return TrunkCache(trunk, keep, int(config.trunk_cache_gb * 2**30))


def from_rank0(value: int, world) -> int:
    """Rank 0's value on every rank (decisions taken on a clock must be the same everywhere)."""
    if world.size() == 1:
        return int(value)
    return int(mx.distributed.all_sum(mx.array(int(value) if world.rank() == 0 else 0), stream=mx.cpu).item())


def sum_across(grads):
    """All-sum a gradient tree across processes in one message (the loss is already globally normalized)."""
    flat = tree_flatten(grads)
    joined = mx.distributed.all_sum(mx.concatenate([g.reshape(-1) for _, g in flat]), stream=mx.cpu)
    pieces, offset = [], 0
    for name, g in flat:
        pieces.append((name, joined[offset : offset + g.size].reshape(g.shape)))
        offset += g.size
    return tree_unflatten(pieces)


def save_adapters(model, path: Path) -> None:
    """The LoRA weights only, in mlx-lm's adapters.safetensors layout."""
    tmp = path.with_suffix(".tmp.safetensors")
    mx.save_safetensors(str(tmp), dict(tree_flatten(model.trainable_parameters())))
    tmp.replace(path)


def write_checkpoint(out: Path, model, optimizer, progress: dict, config: TrainConfig, average=None) -> None:
    """Weights, optimizer state, EMA, RNG and step, written to a temp dir then swapped in (a kill never leaves half)."""
    tmp, final = out / (CHECKPOINT + ".tmp"), out / CHECKPOINT
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if average:
        average.save(tmp / EMA_FILE)
    mx.save_safetensors(str(tmp / "lora.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    mx.save_safetensors(str(tmp / "optimizer.safetensors"), dict(tree_flatten(optimizer.state)))
    run = {k: v for k, v in config_dict(config).items() if k in RUN_FIELDS}
    (tmp / "state.json").write_text(json.dumps({**progress, "run": run}, indent=2) + "\n")
    old = out / (CHECKPOINT + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.replace(old)
    tmp.replace(final)
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint(out: Path, config: TrainConfig) -> dict | None:
    """The saved progress, after checking the run-defining settings match; None when there is none."""
    path = out / CHECKPOINT / "state.json"
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    run = {k: v for k, v in config_dict(config).items() if k in RUN_FIELDS}
    # A field missing from an older checkpoint did not exist then: it ran with today's default.
    saved = {**config_dict(TrainConfig()), **state["run"]}
    changed = {k: (saved.get(k), v) for k, v in run.items() if saved.get(k) != v}
    if changed:
        raise ValueError(f"{path}: cannot resume with changed settings (saved, now): {changed}")
    state.pop("run")
    return state


def restore_checkpoint(out: Path, model, optimizer) -> None:
    """Load the LoRA weights and optimizer state (Adam moments, step, learning rate) saved by write_checkpoint."""
    model.load_weights(str(out / CHECKPOINT / "lora.safetensors"), strict=False)
    saved = mx.load(str(out / CHECKPOINT / "optimizer.safetensors"))
    optimizer.state = tree_unflatten(list(saved.items()))
    optimizer.init(model.trainable_parameters())  # marks it initialized; keeps the loaded moments


class MetricsLog:
    """Append-only metrics.jsonl (rank 0); on resume, rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path, enabled: bool, truncate_after: int):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        if truncate_after < 0:
            path.unlink(missing_ok=True)
        elif path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            kept = [r for r in rows if r["step"] <= truncate_after]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, row: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows) from a metrics.jsonl."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r], [r for r in rows if "val_loss" in r]


def plot_curve(metrics: Path, png: Path) -> None:
    """Training loss (smoothed) and validation loss/accuracy against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_metrics(metrics)
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        steps = [r["step"] for r in train]
        losses = np.array([r["loss"] for r in train])
        k = max(1, len(losses) // 30)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps, losses, alpha=0.25, color="C0")
        ax.plot(steps[k - 1 :], smooth, color="C0", label="train loss")
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", color="C1", label="val loss")
        acc = ax.twinx()
        acc.plot([r["step"] for r in evals], [r["val_accuracy"] for r in evals], "s--", color="C2", label="val acc")
        acc.set_ylabel("val accuracy")
        acc.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss per answer token")
    ax.set_yscale("log")
    handles = [h for a in fig.axes for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc="lower left")  # one legend for both axes, below the curves
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def describe(summary: dict) -> str:
    """The one-line result printed to stdout."""
    best = (
        f"best val_loss {summary['val_loss']:.4f} val_accuracy {summary['val_accuracy']:.4f} at step "
        f"{summary['best_step']}"
        if "val_loss" in summary
        else "no evaluation"
    )
    rate = f", {summary['tokens_per_second']:.0f} tokens/s" if summary.get("tokens_per_second") else ""
    return f"trained {summary['steps']} steps in {summary['seconds']:.0f} s{rate} ({summary['stop']}): {best} -> {summary['adapters']}"
