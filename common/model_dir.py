"""Model directories: check one before loading it, and replace one without ever deleting a user's other files.

with replaced_when_done(Path("model/fused")) as staging:
    save(staging, ...)          # on success staging becomes model/fused; on an error it is removed, the old one kept
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Files that only our stages write: a directory holding one of them is ours to replace.
OWNED_MARKERS = ("psc_base.json", "contract.json")


def require_model_dir(path: str | Path, hint: str = "run `invoke model` or `invoke fuse`") -> Path:
    """`path` as a Path when it holds an mlx-lm model (config.json), else a ValueError with what to do."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise ValueError(f"{path}: not a model directory (no config.json); {hint}")
    return path


def replaceable(out: str | Path) -> None:
    """Raise unless `out` is absent, empty, or a directory one of our stages wrote (so replacing it loses nothing)."""
    target = Path(os.path.realpath(out))  # a symlink's target is replaced, the link kept
    if target.exists() and not target.is_dir():
        raise ValueError(f"{out}: is a file; choose a directory for --out")
    if target.is_dir() and any(target.iterdir()) and not any((target / m).exists() for m in OWNED_MARKERS):
        raise ValueError(
            f"{out}: holds files that our stages did not write (no {' or '.join(OWNED_MARKERS)}); "
            "refusing to replace it (choose another --out)"
        )


@contextmanager
def replaced_when_done(out: str | Path) -> Iterator[Path]:
    """Yield a fresh staging dir beside `out`; when the block succeeds it takes `out`'s place, else it is removed.

    The old `out` is kept until the new one is complete, and moved aside (not deleted) until the new one is in place.
    """
    replaceable(out)
    target = Path(os.path.realpath(out))
    staging, old = (target.with_name(f".{target.name}.{what}") for what in ("partial", "old"))
    for leftover in (staging, old):
        _remove(leftover)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield staging
    except BaseException:
        _remove(staging)
        raise
    if target.exists():
        target.rename(old)
    staging.rename(target)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
