"""evalharness: lm-eval task for the safety test set and a standalone metrics report."""
