"""Load an optimized BLAS before MLX is imported, so MLX's CPU matmuls use it.

The mlx-cpu wheel for Linux bundles the reference netlib BLAS (~6 GFLOP/s). Loading OpenBLAS or MKL into the
global symbol scope first makes MLX resolve `cblas_sgemm` & co. to the fast library (~300 GFLOP/s).

    from common.blas import ensure_fast_blas
    ensure_fast_blas()      # before `import mlx.core`

Set PSC_BLAS=off to skip it (benchmarks use this for the stock baseline), or PSC_BLAS=/path/lib.so to choose.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install an optimized BLAS for ~50x faster MLX on the CPU: "
    "`sudo apt-get install libopenblas0-pthread` (Debian/Ubuntu) or `pip install mkl`"
)

_loaded: str | None = None
_library: ctypes.CDLL | None = None  # the loaded BLAS, for its thread-count call
_done = False


def candidate_paths() -> list[str]:
    """Paths of optimized BLAS libraries to try, best first."""
    found: list[str] = []
    mkl = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    found.extend(mkl)
    for name in ("openblas", "openblasp", "openblas64_"):
        path = ctypes.util.find_library(name)
        if path:
            found.append(path)
    found.extend(sorted(glob.glob("/usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so*")))
    found.extend(sorted(glob.glob("/usr/lib/*-linux-gnu/libopenblas.so*")))
    return list(dict.fromkeys(found))


def ensure_fast_blas(quiet: bool = False) -> str | None:
    """Load the best BLAS found into the global scope once; return its path (None when none or not Linux)."""
    global _loaded, _library, _done
    if _done:
        return _loaded
    _done = True
    if not sys.platform.startswith("linux"):
        return None  # macOS: MLX uses Metal/Accelerate already
    if "mlx.core" in sys.modules:
        _say(quiet, "warning: mlx was imported before the BLAS fix; MLX may use the slow reference BLAS")
    choice = os.environ.get("PSC_BLAS", "")
    if choice == "off":
        _say(quiet, "blas: optimized BLAS disabled (PSC_BLAS=off); MLX uses its bundled reference BLAS")
        return None
    paths = [choice] if choice else candidate_paths()
    for path in paths:
        try:
            _library = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        _loaded = path
        _say(quiet, f"blas: using {Path(path).name} ({path})")
        keep_freed_memory()
        return path
    _say(quiet, f"warning: no optimized BLAS found; MLX will be slow on this CPU. To fix: {INSTALL_HINT}")
    return None


# glibc mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit


def keep_freed_memory() -> bool:
    """Have glibc reuse freed buffers up to 32 MB instead of returning them to the kernel.

    MLX's CPU arrays of a few MB (a batch's activations) otherwise come from fresh mmaps whose pages fault in on
    first touch; glibc's adaptive threshold makes that depend on what ran before. Measured on serve: 1.1x faster,
    and a fast kernel no longer slows down 1.8x after an unrelated op (README, Benchmarks). False off glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow; os.cpu_count() does not)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_threads = 0  # the BLAS thread count last set here (0: never set)


def blas_thread_budget() -> int:
    """BLAS threads to share out: OPENBLAS_NUM_THREADS / MKL_NUM_THREADS / OMP_NUM_THREADS if set, else the cores."""
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return cpu_cores()


def share_cores(concurrent: int) -> None:
    """Give each of `concurrent` MLX streams about cores/concurrent BLAS threads (a no-op when unchanged).

    serve and training run independent work on several MLX streams at once: MLX runs a stream's element-wise ops
    (softmax, SiLU, norms: about half the time on this CPU) on one thread, so one stream leaves cores idle between
    GEMMs. Oversubscribing (every stream with every core's BLAS threads) is slower, hence the split.
    """
    global _threads
    threads = max(1, blas_thread_budget() // max(1, concurrent))
    if threads != _threads and set_blas_threads(threads):
        _threads = threads


def set_blas_threads(threads: int) -> bool:
    """Set the loaded BLAS's thread count (OpenBLAS or MKL); False when none is loaded or it has no such call."""
    if _library is None:
        return False
    for name in ("openblas_set_num_threads", "MKL_Set_Num_Threads"):
        setter = getattr(_library, name, None)
        if setter is not None:
            setter(ctypes.c_int(max(1, threads)))
            return True
    return False


def _say(quiet: bool, message: str) -> None:
    # Printed rather than logged: entry points call this before logging is configured, and it must show once.
    if not quiet:
        print(message, file=sys.stderr, flush=True)
