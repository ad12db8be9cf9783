"""The edge of every command: logging to stderr, the BLAS fix, and ValueError -> one `error:` line, exit 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


def run_cli(body: Callable[[], object], *, uses_mlx: bool = True) -> int:
    """Configure logging (and the BLAS before MLX), run `body`, and turn input errors into `error: …`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if uses_mlx:
        from common.blas import ensure_fast_blas

        ensure_fast_blas()
    try:
        result = body()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
