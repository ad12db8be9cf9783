"""Usage: python -m prep.sources [CACHE_DIR] [SAMPLES_PER_SOURCE] — inspect the builtin sources."""

from common.cli import run_cli
from prep.sources import main

raise SystemExit(run_cli(main, uses_mlx=False))
