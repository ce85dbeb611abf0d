"""Figures people look at (matplotlib, Agg backend, written atomically)."""
