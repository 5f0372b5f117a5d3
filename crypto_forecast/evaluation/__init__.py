"""Judging forecasts: the backtest, the baselines, error metrics and conformal intervals."""
