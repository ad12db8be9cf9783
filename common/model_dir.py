"""Model directories: check one before loading it, and replace one without ever deleting a user's other files."""

from __future__ import annotations

import shutil
from pathlib import Path

# Files that mark a directory as ours to replace: an mlx-lm model, our base-model marker, a contract.
OWNED_MARKERS = ("config.json", "psc_base.json", "contract.json")


def require_model_dir(path: str | Path, hint: str = "run `invoke model` or `invoke fuse`") -> Path:
    """`path` as a Path when it holds an mlx-lm model (config.json), else a ValueError with what to do."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise ValueError(f"{path}: not a model directory (no config.json); {hint}")
    return path


def replaceable(out: Path) -> None:
    """Raise unless `out` is absent, empty, or a model/adapters dir we wrote (so replacing it loses nothing else)."""
    if out.is_file():
        raise ValueError(f"{out}: is a file; choose a directory for --out")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in OWNED_MARKERS):
        raise ValueError(
            f"{out}: holds files that are not a model directory; refusing to replace it (choose another --out)"
        )


def swap_in(built: Path, out: Path) -> Path:
    """Move a finished `built` dir to `out`, replacing the old `out` only now that the new one is complete."""
    replaceable(out)
    if out.exists():
        shutil.rmtree(out)
    built.rename(out)
    return out


def staging_dir(out: Path) -> Path:
    """A fresh sibling of `out` to build into (same filesystem, so the final rename is cheap)."""
    staging = out.with_name(f".{out.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    return staging
