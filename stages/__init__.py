"""Crypto price forecasting pipeline: one module per DVC stage plus a few shared modules."""
