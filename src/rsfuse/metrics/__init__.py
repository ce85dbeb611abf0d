"""Metrics derived from whole-split accumulators (never averaged per batch)."""
