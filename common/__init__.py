"""Pieces every stage shares: the optimized-BLAS loader and the classifier contract."""
