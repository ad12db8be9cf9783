"""Usage: python -m prep.sources [CACHE_DIR] [SAMPLES_PER_SOURCE] — inspect the builtin sources."""

from prep.sources import main

main()
