"""The walk-forward backtest: every fold's network forecasts from its own validation and
scored origins, with its own scaler, beside the baselines on the same origins; and the live
network on its validation slice (which calibrates the served bands).

One long table (origin, horizon, date, actual, every predictor, split, fold), as the
single-split backtest had, with a `fold` column. A fold's rows read prices up to each
origin only (the forecasts) and the actual after it; its network never saw a day past its
cut-off (crypto_forecast.data.folds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crypto_forecast.data.folds import Fold
from crypto_forecast.data.series import FloatArray, MinMaxScaler, Target, model_series
from crypto_forecast.evaluation.backtest import Predictor, backtest_table, model_forecasts
from crypto_forecast.evaluation.baselines import train_drift


@dataclass(frozen=True)
class FoldModel:
    """A fold (or the live model), its network and the scaler fitted on its training days."""

    fold: Fold
    network: Predictor
    scaler: MinMaxScaler


def fold_table(model: FoldModel, *, close: FloatArray, dates: pd.DatetimeIndex, target: Target,
               window: int, horizon: int, ma_window: int) -> pd.DataFrame:
    """One fold's rows: `val` (targets inside its validation slice) and, for a walk-forward
    fold, `test` (origins up to the next cut-off, targets up to the end of the data)."""
    fold = model.fold
    scaled = model.scaler.transform(model_series(close, target))
    slope = train_drift(close[: fold.cutoff])
    parts = [("val", fold.val_origins(), fold.cutoff)]
    if not fold.is_live:
        parts.append(("test", fold.score_origins(), close.size))
    tables = []
    for split, origins, stop in parts:
        lstm = model_forecasts(model.network, scaled, close, origins, window, horizon,
                               model.scaler, target)
        tables.append(backtest_table(lstm=lstm, close=close, dates=dates, origins=origins,
                                     stop=stop, drift_slope=slope, ma_window=ma_window,
                                     split=split))
    table = pd.concat(tables, ignore_index=True)
    table["fold"] = fold.name
    return table


def walk_forward_table(models: list[FoldModel], *, close: FloatArray, dates: pd.DatetimeIndex,
                       target: Target, window: int, horizon: int, ma_window: int
                       ) -> tuple[pd.DataFrame, float]:
    """Every fold's rows, in fold order, and the seconds the networks' forecasts took."""
    values = np.asarray(close, dtype=np.float64)
    t0 = time.perf_counter()
    tables = [fold_table(m, close=values, dates=dates, target=target, window=window,
                         horizon=horizon, ma_window=ma_window) for m in models]
    return pd.concat(tables, ignore_index=True), time.perf_counter() - t0
