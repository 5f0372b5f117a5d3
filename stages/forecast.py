"""Stage `forecast`: a recursive multi-day forecast from the last date in the data, with
the conformal bands evaluate calibrated, and the report a person reads
(reports/forecast.{csv,md,html,png}), logged to the training's run.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import pandas as pd

from stages import atomic, paths
from stages.artifacts import read_json, read_series
from stages.backtest import Model, recursive_model_forecast
from stages.cli import run_stage
from stages.errors import ArtifactError
from stages.intervals import band, recent_volatility
from stages.network import load_network
from stages.params import load_params
from stages.report import ReportContext, levels, render_chart, render_html, render_markdown
from stages.windows import MinMaxScaler, Target, to_prices

log = logging.getLogger("stages.forecast")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("preprocess", "forecast", "mlflow")


def band_widths(metrics: dict[str, Any], horizon: int, close: np.ndarray) -> dict[str, np.ndarray]:
    """Per level name, the log half-width of the band for h = 1..horizon from the last day:
    evaluate's calibrated quantile, times the recent volatility if it scaled by it."""
    days = int(metrics["intervals"].get("volatility_days") or 0)
    unit = float(recent_volatility(close, [close.size - 1], days)[0]) if days else 1.0
    out: dict[str, np.ndarray] = {}
    for name in levels(metrics):
        entry = metrics["intervals"][name]
        try:
            out[name] = unit * np.array([float(entry[f"h{h}"]["score_quantile"])
                                         for h in range(1, horizon + 1)])
        except KeyError:
            raise ArtifactError(
                f"{paths.METRICS} has no {name}% band for {horizon} days ahead — rerun "
                "`dvc repro evaluate` (forecast.horizon must not exceed evaluate.horizon)"
            ) from None
    return out


def forecast_frame(model: Model, series: pd.DataFrame, scaler: MinMaxScaler, target: Target,
                   window: int, horizon: int, widths: dict[str, np.ndarray]) -> pd.DataFrame:
    """The next `horizon` days after the last date: forecast and (lower, upper) per level."""
    close = series["close"].to_numpy(dtype=np.float64)
    last = np.array([close.size - 1])
    scaled = recursive_model_forecast(model, series["scaled"].to_numpy(dtype=np.float64), last,
                                      window, horizon)
    prices = to_prices(scaler.inverse(scaled), close[last], target)[0]
    days = pd.date_range(series.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    fc = pd.DataFrame({"forecast": prices}, index=days.rename("date"))
    for name, q in widths.items():
        fc[f"lower_{name}"], fc[f"upper_{name}"] = band(prices, q)
    return fc


def main() -> None:
    params = load_params()
    info = read_json(paths.TRAIN_INFO, "train")
    meta = read_json(paths.RAW_META, "download")
    metrics = read_json(paths.METRICS, "evaluate")
    scaler = MinMaxScaler.from_json(read_json(paths.SCALER, "preprocess"))
    series = read_series()

    net = load_network(paths.MODEL)

    import mlflow

    from stages import tracking

    cfg = params.forecast
    with tracking.stage_run(params.mlflow.experiment, run_id=str(info["run_id"])):
        tracking.tag_stage_params(params, "forecast")
        widths = band_widths(metrics, cfg.horizon, series["close"].to_numpy(dtype=np.float64))
        fc = forecast_frame(net, series, scaler, params.preprocess.target,
                            params.preprocess.window, cfg.horizon, widths)
        commit, dirty = tracking.git_commit()
        ticker = str(meta.get("ticker", "?"))
        ctx = ReportContext(
            ticker=ticker, source_used=str(meta.get("source_used", "?")),
            data_first=str(series.index[0].date()), data_last=str(series.index[-1].date()),
            days=len(series), sha256=str(meta.get("sha256", "")), run_id=str(info["run_id"]),
            param_count=int(info["param_count"]), units=str(info.get("units", "?")),
            window=params.preprocess.window, target=params.preprocess.target,
            git_commit=commit + (" (uncommitted changes)" if dirty else ""),
            history_days=cfg.history_days)
        csv = io.StringIO()
        fc.to_csv(csv, date_format="%Y-%m-%d", float_format="%.4f")
        png = render_chart(series["close"].iloc[-cfg.history_days:], fc, ticker, list(widths),
                           ctx.source_used == "synthetic")
        atomic.write_text(paths.FORECAST_CSV, csv.getvalue())
        atomic.write_bytes(paths.FORECAST_PNG, png)
        atomic.write_text(paths.FORECAST_MD, render_markdown(ctx, metrics, fc, paths.FORECAST_PNG.name))
        atomic.write_text(paths.FORECAST_HTML, render_html(ctx, metrics, fc, png))
        for path in (paths.FORECAST_CSV, paths.FORECAST_PNG, paths.FORECAST_MD, paths.FORECAST_HTML):
            mlflow.log_artifact(str(path), "reports")
        log.info("forecast %s .. %s: %s", fc.index[0].date(), fc.index[-1].date(),
                 ", ".join(f"{v:,.0f}" for v in fc["forecast"]))


if __name__ == "__main__":
    run_stage("forecast", main)
