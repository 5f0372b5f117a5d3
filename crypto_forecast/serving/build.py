"""The pipeline's two forecasters, built from its own files: the LSTM's (the trained
network, the scaler, the band calibration in evaluation.json) and the naive one
(persistence with its own calibrated bands). evaluate logs and registers them; forecast
writes reports/forecast.csv with the same objects, so what is served is what the report
shows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crypto_forecast.data.series import Target
from crypto_forecast.io.contracts import EvaluationReport, TrainedModel
from crypto_forecast.model.numpy_net import Network
from crypto_forecast.serving.bundle import BandCalibration, ForecasterSpec
from crypto_forecast.serving.price_forecaster import PriceForecaster


def _scores(report: EvaluationReport) -> dict[str, float | None]:
    return {"skill_h1": report.serving.skill_h1, "skill_mean": report.serving.skill_mean,
            f"skill_h{report.backtest.horizon}": report.headline.skill_hmax,
            **{f"coverage_{k}": v for k, v in report.headline.coverage.items()}}


def pipeline_forecasters(*, network: Network, live: TrainedModel, report: EvaluationReport,
                         ticker: str, window: int, target: Target,
                         data_sha256: str) -> dict[str, PriceForecaster]:
    """{'lstm': ..., 'naive': ...}, each for `report`'s horizon with its calibrated bands;
    the LSTM's is the live model (its scaler, the days it saw)."""
    days = report.bands[0].volatility_days if report.bands else 0
    horizon = report.backtest.horizon
    common = {"ticker": ticker, "horizon": horizon, "volatility_days": days,
              "data_sha256": data_sha256, "scores": _scores(report)}
    lstm = ForecasterSpec(
        kind="lstm", window=window, target=target, scaler_min=live.scaler_min,
        scaler_max=live.scaler_max, data_first=live.train_first, data_last=live.val_last,
        bands=tuple(BandCalibration(level=b.nominal, score_quantiles=tuple(
            h.score_quantile for h in b.horizons)) for b in report.bands), **common)
    naive = ForecasterSpec(
        kind="naive", window=1, bands=tuple(
            BandCalibration(level=b.nominal, score_quantiles=tuple(report.serving.naive_quantiles[b.name]))
            for b in report.bands), **common)
    return {"lstm": PriceForecaster(lstm, network), "naive": PriceForecaster(naive)}


def recent_closes(series: pd.DataFrame) -> pd.DataFrame:
    """The series as a forecaster's input: one row per day, `date` (YYYY-MM-DD) and `close`."""
    return pd.DataFrame({"date": pd.DatetimeIndex(series.index).strftime("%Y-%m-%d"),
                         "close": series["close"].to_numpy(dtype=np.float64)})
