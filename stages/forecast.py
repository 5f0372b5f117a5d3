"""Stage `forecast`: a recursive multi-day forecast from the last date in the data, and the
report a person reads (reports/forecast.{csv,md,png}), logged to the training's run.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import pandas as pd

from stages import atomic, paths
from stages.artifacts import read_json, read_series
from stages.cli import run_stage
from stages.params import Params, load_params
from stages.windows import MinMaxScaler

log = logging.getLogger("stages.forecast")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("preprocess", "forecast", "mlflow")


def recursive_forecast(model: Any, last_window: np.ndarray, horizon: int) -> np.ndarray:
    """Predict `horizon` steps, feeding each prediction back as the newest input.

    `last_window` has shape (n_origins, window) in model units; returns (n_origins, horizon).
    """
    window = np.asarray(last_window, dtype=np.float32).copy()
    if window.ndim == 1:
        window = window[np.newaxis, :]
    out = np.empty((window.shape[0], horizon), dtype=np.float64)
    for h in range(horizon):
        step = model.predict(window[..., np.newaxis], batch_size=4096, verbose=0).reshape(-1)
        out[:, h] = step
        window = np.concatenate([window[:, 1:], step[:, np.newaxis].astype(np.float32)], axis=1)
    return out


def render_markdown(params: Params, meta: dict[str, Any], info: dict[str, Any],
                    metrics: dict[str, Any], series: pd.DataFrame, fc: pd.DataFrame) -> str:
    """The human report: banner for synthetic data, the numbers, and what they are worth."""
    ticker = str(meta.get("ticker", "?"))
    lines: list[str] = []
    if meta.get("source_used") == "synthetic":
        lines += ["> **SYNTHETIC DATA — NOT REAL PRICES.** Yahoo Finance was unreachable (or "
                  "`download.source: synthetic` was chosen), so this report is built on a "
                  "seeded, simulated ETH-like series. Once online, run `dvc repro -f download` "
                  "(or use `download.source: csv`) to rebuild it on real data.", ""]
    test = metrics["test"]
    period = metrics["test_period"]
    ratio = float(metrics["skill_rmse_vs_persistence"])
    lines += [
        f"# {ticker}: {len(fc)}-day forecast",
        "",
        f"- Data: {meta.get('source_used', '?')} source, {series.index[0].date()} .. "
        f"{series.index[-1].date()} ({len(series)} days), sha256 `{str(meta.get('sha256', ''))[:12]}`",
        f"- Model: LSTM {info.get('units')}, window {info.get('window')} days, "
        f"{info['param_count']:,} parameters, trained on the first "
        f"{int((series['split'] == 'train').sum())} days; MLflow run `{info['run_id']}`",
        "",
        "| date | forecast |",
        "|---|---:|",
    ]
    lines += [f"| {day.date()} | {value:,.2f} |" for day, value in zip(fc.index, fc["forecast"], strict=True)]
    lines += [
        "",
        f"![history and forecast]({paths.FORECAST_PNG.name})",
        "",
        f"## How good is it? One-step test errors, {period['first']} .. {period['last']} "
        f"({period['days']} days)",
        "",
        "| predictor | RMSE | MAE | MAPE % |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("model", "LSTM"), ("persistence", "persistence (tomorrow = today)")):
        m = test[name]
        lines.append(f"| {label} | {m['rmse']:,.2f} | {m['mae']:,.2f} | {m['mape']:.2f} |")
    verdict = ("beats" if ratio < 1 else "does not beat")
    lines += [
        "",
        f"The LSTM's one-step RMSE is {ratio:.2f}× persistence's: it {verdict} simply "
        "repeating today's price. Daily crypto closes are close to a random walk; one-step "
        "errors are measured with the true price of every previous day, so errors several "
        "days out (where the model feeds on its own predictions) are larger.",
        "",
    ]
    return "\n".join(lines)


def render_chart(series: pd.DataFrame, fc: pd.DataFrame, ticker: str, history_days: int,
                 synthetic: bool) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = series["close"].iloc[-history_days:]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    ax.plot(hist.index, hist.to_numpy(), color="#1f4e79", lw=1.5, label="close (history)")
    ax.plot([hist.index[-1], *fc.index], [hist.iloc[-1], *fc["forecast"]], color="#d35400",
            lw=2, marker="o", ms=3, label=f"{len(fc)}-day forecast")
    title = f"{ticker}: last {len(hist)} days and {len(fc)}-day forecast"
    if synthetic:
        title += "  [SYNTHETIC DATA]"
    ax.set_title(title)
    ax.set_ylabel("price (USD)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def main() -> None:
    params = load_params()
    info = read_json(paths.TRAIN_INFO, "train")
    meta = read_json(paths.RAW_META, "download")
    metrics = read_json(paths.METRICS, "evaluate")
    scaler = MinMaxScaler.from_json(read_json(paths.SCALER, "preprocess"))
    series = read_series()

    import mlflow

    from stages import tracking
    from stages.model import load_model

    model = load_model(paths.MODEL)
    window = params.preprocess.window
    horizon = params.forecast.horizon
    with tracking.stage_run(params.mlflow.experiment, run_id=str(info["run_id"])):
        tracking.tag_stage_params(params, "forecast")
        scaled = recursive_forecast(model, series["scaled"].to_numpy()[-window:], horizon)[0]
        days = pd.date_range(series.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
        fc = pd.DataFrame({"forecast": scaler.inverse(scaled)}, index=days.rename("date"))
        csv = io.StringIO()
        fc.to_csv(csv, date_format="%Y-%m-%d", float_format="%.4f")
        png = render_chart(series, fc, str(meta.get("ticker", "?")), params.forecast.history_days,
                           meta.get("source_used") == "synthetic")
        md = render_markdown(params, meta, info, metrics, series, fc)
        atomic.write_text(paths.FORECAST_CSV, csv.getvalue())
        atomic.write_bytes(paths.FORECAST_PNG, png)
        atomic.write_text(paths.FORECAST_MD, md)
        for path in (paths.FORECAST_CSV, paths.FORECAST_PNG, paths.FORECAST_MD):
            mlflow.log_artifact(str(path), "reports")
        log.info("forecast %s .. %s: %s", days[0].date(), days[-1].date(),
                 ", ".join(f"{v:,.0f}" for v in fc["forecast"]))


if __name__ == "__main__":
    run_stage("forecast", main)
