"""Prices from each source, their validation, and the modelled series (scaling, splits, windows)."""
