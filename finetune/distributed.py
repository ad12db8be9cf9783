"""Data-parallel training through MLX's own launcher (`mlx.launch`, ring backend).

    python -m finetune train --np 2                    # 2 local processes on 127.0.0.1
    python -m finetune train --hosts hosts.json        # one process per host in an mlx.launch hostfile

The launcher starts `python -m finetune train <same arguments>` once per rank with MLX_RANK and MLX_HOSTFILE set;
`mx.distributed.init()` then joins the ring. Each rank trains on its stride of every global batch, gradients are
summed with `mx.distributed.all_sum` (the loss is normalized by the global batch's answer-token count, so the sum is
the single-process gradient), and rank 0 alone writes files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def launched() -> bool:
    """Whether this process was started by mlx.launch (so it must not launch again)."""
    return "MLX_RANK" in os.environ


def launcher() -> str:
    """Path of the mlx.launch script beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("mlx.launch")
    if beside.exists():
        return str(beside)
    found = shutil.which("mlx.launch")
    if not found:
        raise ValueError("mlx.launch not found; install mlx (it ships the launcher) in this environment")
    return found


def check_hostfile(path: Path) -> list[dict]:
    """Validate an mlx.launch hostfile: a list (or {"hosts": [...]}) of {"ssh": name, "ips": [ip, ...]}."""
    if not path.exists():
        raise ValueError(f"{path}: hosts file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    hosts = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(hosts, list) or not hosts:
        raise ValueError(f'{path}: expected a list of hosts like [{{"ssh": "host1", "ips": ["10.0.0.1"]}}]')
    for host in hosts:
        if not isinstance(host, dict) or "ssh" not in host or not host.get("ips"):
            raise ValueError(f'{path}: every host needs "ssh" and "ips" (the ring backend connects by IP): {host}')
    return hosts


def launch_command(train_args: list[str], np: int | None, hosts: Path | None) -> list[str]:
    """The mlx.launch command line that runs `python -m finetune train <train_args>` on every rank."""
    command = [launcher(), "--backend", "ring"]
    if hosts is not None:
        check_hostfile(hosts)
        command += ["--hostfile", str(hosts)]
        if np and np > 1:
            command += ["-n", str(np)]
    else:
        command += ["--hosts", "127.0.0.1", "-n", str(np)]
    return [*command, "--", sys.executable, "-m", "finetune", "train", *train_args]


def run_launched(train_args: list[str], np: int | None, hosts: Path | None) -> int:
    """Run the training under mlx.launch and return its exit code (non-zero if any rank failed)."""
    if hosts is None and (np is None or np < 1):
        raise ValueError("--np must be at least 1")
    command = launch_command(train_args, np, hosts)
    print(f"launching: {' '.join(command)}", file=sys.stderr, flush=True)
    return subprocess.run(command, stdin=subprocess.DEVNULL).returncode


def strip_launch_args(argv: list[str]) -> list[str]:
    """The train arguments without --np/--hosts (the ranks must not launch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--np", "--hosts"):
            skip = True
            continue
        if arg.startswith(("--np=", "--hosts=")):
            continue
        out.append(arg)
    return out
