"""prep: raw sources -> cleaned, deduplicated, leak-free splits (Parquet + mlx-lm JSONL + manifest)."""
