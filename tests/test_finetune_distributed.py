"""Data-parallel training through mlx.launch (ring backend, 2 processes on 127.0.0.1) matches one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_finetune_train import common_args, make_data, metrics, train_cli

from finetune.distributed import launch_command, strip_launch_args

# Same global batch and data order, so the two runs differ only in float32 summation order (per-rank matmuls on
# half batches, then one all_sum): |dloss| per step stays around 1e-6 relative; 1e-3 leaves room for that drift to
# grow over 10 Adam steps while still catching a wrong normalization (a factor of 2) or a wrong shard (different
# examples give losses that differ by far more than 1e-3).
TOLERANCE = 1e-3


def test_launch_command_and_argument_stripping(tmp_path):
    assert strip_launch_args(["--np", "2", "--iters", "5", "--hosts=h.json"]) == ["--iters", "5"]
    command = launch_command(["--iters", "5"], 2, None)
    assert command[1:6] == ["--backend", "ring", "--hosts", "127.0.0.1", "-n"]
    assert command[-5:] == ["-m", "finetune", "train", "--iters", "5"]
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([{"ssh": "a", "ips": []}]))
    with pytest.raises(ValueError, match="ips"):
        launch_command([], None, hosts)


def test_two_processes_match_one(tiny_model_dir, tmp_path):
    data = make_data(tmp_path / "data")
    single, double = tmp_path / "single", tmp_path / "double"
    extra = ("--iters", "10", "--eval-every", "5")
    done = train_cli(*common_args(tiny_model_dir, data, single, *extra))
    assert done.returncode == 0, done.stderr
    done = train_cli(*common_args(tiny_model_dir, data, double, *extra), "--np", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 10 steps") == 1  # rank 0 alone reports (and writes)
    one = [r for r in metrics(single) if "loss" in r]
    two = [r for r in metrics(double) if "loss" in r]
    assert [r["step"] for r in two] == list(range(1, 11))
    for a, b in zip(one, two, strict=True):
        assert abs(a["loss"] - b["loss"]) <= TOLERANCE * max(1.0, abs(a["loss"])), (a, b)
    assert [r["tokens"] for r in one] == [r["tokens"] for r in two]
    evals = [(r["val_loss"], r["val_accuracy"]) for r in metrics(double) if "val_loss" in r]
    ref = [(r["val_loss"], r["val_accuracy"]) for r in metrics(single) if "val_loss" in r]
    assert all(abs(a[0] - b[0]) <= TOLERANCE * max(1, a[0]) and a[1] == b[1] for a, b in zip(ref, evals, strict=True))
    assert (double / "adapters.safetensors").exists() and not list(Path(double).glob("*.tmp*"))


@pytest.mark.slow
def test_bench_part_writes_results(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "finetune.bench", "--out", str(out), "--quick", "--model",
                           str(tiny_model_dir), "--data", str(tmp_path / "none")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "train.json").read_text())
    assert result["ours"]["tokens_per_second"] > 0 and result["mlx_lm_stock"]["steps"] == 1
    assert result["ours_second_epoch_trunk_cached"]["steps"] == result["ours_second_epoch"]["steps"] == 4
    assert result["trunk_cache_speedup"] > 0
    assert (out / "train.md").read_text().startswith("## train")


def test_bench_rows_are_of_one_length(tiny_model_dir, tmp_path):
    """Each trainer draws its own batches, so the bench times rows of about the split's mean length.

    The mean is of the tokens training sees: the long row counts as its 256-token cut (uncut, it would pull the mean
    to the 40-word rows).
    """
    from finetune.bench import bench_rows, write_bench_data

    words = ["ok"] * 10 + ["word " * 40] * 8 + ["word " * 20 + str(i) for i in range(6)] + ["word " * 3000]
    data = write_bench_data([(text, i % 2) for i, text in enumerate(words)], tmp_path / "data")
    picked = bench_rows(data, 6, str(tiny_model_dir))
    assert sorted(text for text, _ in picked) == sorted(words[18:24])
    assert bench_rows(tmp_path / "none", 3, str(tiny_model_dir))[0][0].startswith("How do I kill")
