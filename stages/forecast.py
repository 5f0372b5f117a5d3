"""Stage `forecast@<TICKER>`: a recursive multi-day forecast from the last date in the data,
with the conformal bands evaluate calibrated (read from reports/<TICKER>/evaluation.json), and
the report a person reads (reports/<TICKER>/forecast.{csv,md,html,png}), and the ticker's card
for the summary (reports/cards/<TICKER>.json). Everything is logged to the training's run
first, from memory; the files are written last, so a failure leaves no new output.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import tempfile
from pathlib import Path

import pandas as pd

from crypto_forecast.cli import argv_ticker, run_stage, stage_ticker
from crypto_forecast.errors import ArtifactError, DataError
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_series
from crypto_forecast.io.atomic import artifact_errors
from crypto_forecast.io.contracts import CardDay, EvaluationReport, TickerCard, TrainInfo
from crypto_forecast.model.numpy_net import load_network
from crypto_forecast.params import load_params
from crypto_forecast.report.render import ReportContext, render_chart, render_html, render_markdown
from crypto_forecast.serving.build import pipeline_forecasters, recent_closes
from crypto_forecast.serving.price_forecaster import ForecastInputError

log = logging.getLogger("stages.forecast")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these). The ticker
# comes from the command line (dvc.yaml's matrix).
PARAM_SECTIONS = ("preprocess", "forecast", "mlflow")


def main(ticker: str | None = None) -> None:
    params = load_params()
    ticker = stage_ticker(params.download.tickers, ticker)
    out = paths.for_ticker(ticker)
    train_info = TrainInfo.read(out.train_info, f"train@{ticker}")
    info = train_info.model_dump(mode="json")
    meta = read_json(out.raw_meta, f"download@{ticker}")
    evaluation = EvaluationReport.read(out.evaluation, f"evaluate@{ticker}")
    series = read_series(out.latest_series)

    net = load_network(out.model)

    import mlflow

    from crypto_forecast.tracking import runs
    from crypto_forecast.tracking.provenance import git_commit
    from crypto_forecast.tracking.store import mlflow_errors

    cfg = params.forecast
    if cfg.horizon > evaluation.backtest.horizon:
        raise ArtifactError(
            f"{out.evaluation} has bands for {evaluation.backtest.horizon} days, fewer than "
            f"forecast.horizon={cfg.horizon} — rerun `dvc repro evaluate@{ticker}` "
            "(forecast.horizon must not exceed evaluate.horizon)")
    # The same forecasters evaluate registered: what is served is what this report shows.
    forecasters = pipeline_forecasters(
        network=net, live=train_info.live, report=evaluation, ticker=ticker,
        window=params.preprocess.window, target=params.preprocess.target,
        data_sha256=str(meta.get("sha256", "")))
    closes = recent_closes(series)
    served = evaluation.serving.served
    try:
        fc = forecasters[served].forecast(closes).head(cfg.horizon)
        if served == "naive":  # the LSTM's forecast beside it, labelled as not served
            fc["lstm_forecast"] = forecasters["lstm"].forecast(closes)["forecast"].head(cfg.horizon)
    except ForecastInputError as exc:
        raise DataError(
            f"{out.latest_series}: the served forecaster cannot use the latest closes ({exc}) "
            "— fix those rows of the source data; download.on_jump: error refuses such data at "
            "download") from None
    fc = fc.set_index(pd.DatetimeIndex(fc.pop("date"), name="date"))
    widths = [b.name for b in evaluation.bands]
    commit, dirty = git_commit()
    ctx = ReportContext(
        ticker=ticker, source_used=str(meta.get("source_used", "?")),
        data_first=str(series.index[0].date()), data_last=str(series.index[-1].date()),
        days=len(series), sha256=str(meta.get("sha256", "")), run_id=str(info["run_id"]),
        param_count=int(info["param_count"]), units=str(info.get("units", "?")),
        window=params.preprocess.window, target=params.preprocess.target,
        git_commit=commit + (" (uncommitted changes)" if dirty else ""),
        history_days=cfg.history_days, live=train_info.live,
        made_on=str(series.index[-1].date() + dt.timedelta(days=1)),
        trained_through=_trained_through(series))
    csv = io.StringIO()
    fc.to_csv(csv, date_format="%Y-%m-%d", float_format="%.4f")
    png = render_chart(series["close"].iloc[-cfg.history_days:], fc, ticker, widths,
                       ctx.source_used == "synthetic")
    card = TickerCard(
        ticker=ticker, source_used=ctx.source_used, data_first=ctx.data_first,
        data_last=ctx.data_last, last_close=float(series["close"].iloc[-1]),
        data_sha256=ctx.sha256, run_id=ctx.run_id, served=served,
        reasons=list(evaluation.serving.reasons), headline=evaluation.headline,
        days=[CardDay(date=str(day.date()), forecast=float(row["forecast"]),
                      lower={w: _finite(row.get(f"lower_{w}")) for w in widths},
                      upper={w: _finite(row.get(f"upper_{w}")) for w in widths})
              for day, (_, row) in zip(pd.DatetimeIndex(fc.index), fc.iterrows(), strict=True)])
    texts = {
        out.card: card.to_json(),
        out.forecast_csv: csv.getvalue(),
        out.forecast_md: render_markdown(ctx, evaluation, fc, out.forecast_png.name),
        out.forecast_html: render_html(ctx, evaluation, fc, png),
    }
    with runs.stage_run(params.mlflow.experiment, run_id=str(info["run_id"]), stage="forecast"):
        runs.tag_stage_params(params, "forecast")
        with mlflow_errors("cannot log the forecast to MLflow",
                           "check the store is writable and rerun; no output was written"), \
                artifact_errors("forecast"):
            for path, text in texts.items():
                if path != out.card:
                    mlflow.log_text(text, f"reports/{path.name}")
            # MLflow has no log_bytes: the PNG goes through a private temporary folder.
            with tempfile.TemporaryDirectory() as tmp:
                staged = Path(tmp) / out.forecast_png.name
                staged.write_bytes(png)
                mlflow.log_artifact(str(staged), "reports")
        # Last, once everything else has worked: all outputs in one atomic step.
        atomic.write_all({out.forecast_png: png, **texts})
    log.info("served (%s) forecast %s .. %s: %s", served, fc.index[0].date(), fc.index[-1].date(),
             ", ".join(f"{v:,.0f}" for v in fc["forecast"]))
    log.info("wrote %s/: %s", out.reports_dir,
             ", ".join(p.name for p in (out.forecast_csv, out.forecast_md, out.forecast_html,
                                        out.forecast_png)))


def _finite(value: object) -> float | None:
    """A band bound as the card holds it: a number, or None where the band is unbounded."""
    number = float(value) if isinstance(value, (int, float)) else float("nan")
    return number if math.isfinite(number) else None


def _trained_through(series: pd.DataFrame) -> str:
    """The last day of the training series: the closes after it are split `live`."""
    trained = series.index[series["split"].astype(str) != "live"]
    return str(trained[-1].date()) if len(trained) else "?"


if __name__ == "__main__":
    run_stage("forecast", lambda: main(argv_ticker()))
