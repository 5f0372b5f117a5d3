"""`python -m crypto_forecast refresh --as-of D`: the pipeline as it would have run on the
morning of D, and the served forecast recorded in the ledger.

It writes live.yaml (the as-of day, and the training cut when a retrain is due), runs
`dvc repro` (DVC skips train and evaluate while the cut stands still), and records what
forecast served, with the closes it saw, in one ledger transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from crypto_forecast.data.sources import REAL_DATA_ONLY_ENV
from crypto_forecast.errors import ArtifactError, RefreshError
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_series
from crypto_forecast.io.contracts import EvaluationReport, TrainInfo
from crypto_forecast.live.ledger import (
    ForecastDay,
    Ledger,
    RefreshFacts,
    ServedForecast,
    Written,
    ledger_uri,
)
from crypto_forecast.params import LiveParams, Params, load_params
from crypto_forecast.repro import ReproRun, dvc_env, run_dvc_repro

log = logging.getLogger("crypto_forecast.refresh")

# The params sections whose change makes the networks' training stale (forecast's and the
# refresh's own do not).
TRAINING_SECTIONS = ("download", "preprocess", "train", "evaluate", "promote")
_RUNNING = re.compile(r"^Running stage '([^']+)'")


@dataclass(frozen=True)
class RetrainDecision:
    due: bool
    reason: str


def training_digest(params: Params) -> str:
    """A digest of the params the networks' training depends on."""
    dumped = params.model_dump(mode="json")
    blob = json.dumps({s: dumped[s] for s in TRAINING_SECTIONS}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def retrain_due(*, as_of: dt.date, train_cut: dt.date | None, last_retrain: RefreshFacts | None,
                params_digest: str, every_days: int, alarm: str | None = None) -> RetrainDecision:
    """Whether this refresh moves the training cut, and why: the one place the policy lives
    (the schedule, changed params, no training recorded yet, and an alarm)."""
    origin = as_of - dt.timedelta(days=1)
    if alarm:
        return RetrainDecision(True, f"alarm: {alarm}")
    if train_cut is None or last_retrain is None:
        return RetrainDecision(True, "no training cut recorded in this ledger yet")
    if last_retrain.params_digest != params_digest:
        return RetrainDecision(True, "params changed since the last retrain")
    if train_cut > origin:
        return RetrainDecision(True, f"the training cut {train_cut} is after the last close "
                                     f"{origin}")
    age = (origin - train_cut).days
    if age >= every_days:
        return RetrainDecision(True, f"{age} days since the cut {train_cut} "
                                     f"(refresh.retrain_every_days: {every_days})")
    return RetrainDecision(False, f"{age} of {every_days} days since the cut {train_cut}")


def live_yaml(live: LiveParams) -> str:
    """live.yaml's text (dates quoted: DVC refuses YAML dates)."""
    def show(day: dt.date | None) -> str:
        return "null" if day is None else f'"{day.isoformat()}"'

    cut = live.train_cut
    cuts = ("{" + ", ".join(f"{t}: {show(d)}" for t, d in cut.items()) + "}"
            if isinstance(cut, dict) else show(cut))
    return ("# Written by `python -m crypto_forecast refresh`: the as-of day and the training cut\n"
            "# (one day, or a day per ticker). null and null (as committed) run the pipeline as\n"
            "# params.yaml says.\n"
            f"as_of: {show(live.as_of)}\n"
            f"train_cut: {cuts}\n")


def _restore(previous: str | None) -> None:
    if previous is None:
        paths.LIVE_PARAMS.unlink(missing_ok=True)
    else:
        atomic.write_text(paths.LIVE_PARAMS, previous)
    subprocess.run([sys.executable, "-m", "dvc", "checkout", "--quiet"], env=dvc_env(),
                   check=False, capture_output=True)


def served_forecast(ticker: str, as_of: dt.date
                    ) -> tuple[ServedForecast, list[tuple[dt.date, float]], EvaluationReport]:
    """What forecast served (reports/<TICKER>/forecast.csv) and the closes it saw (the latest
    series), checked, with where they came from."""
    import pandas as pd

    from crypto_forecast.tracking.provenance import git_commit

    where = paths.for_ticker(ticker)
    meta = read_json(where.raw_meta, f"download@{ticker}")
    if meta.get("source_used") == "synthetic":
        raise RefreshError(f"the pipeline ran on SYNTHETIC data for {ticker}; the ledger records "
                           "forecasts from real closes only — set download.source to yahoo or csv "
                           "and rerun")
    info = TrainInfo.read(where.train_info, f"train@{ticker}")
    evaluation = EvaluationReport.read(where.evaluation, f"evaluate@{ticker}")
    series = read_series(where.latest_series)
    fix = f"rerun `dvc repro -f forecast@{ticker}`"
    try:
        fc = pd.read_csv(where.forecast_csv, dtype={"date": str})
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{where.forecast_csv} is unreadable ({exc}) — {fix}") from None
    origin = series.index[-1].date()
    bands = [b.name for b in evaluation.bands]
    needed = ["date", "forecast"] + [f"{side}_{b}" for b in bands for side in ("lower", "upper")]
    missing = [c for c in needed if c not in fc.columns]
    if missing or fc.empty:
        raise ArtifactError(f"{where.forecast_csv} lacks {missing or 'rows'} — {fix}")
    numbers = fc[needed[1:]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    days = []
    for h, (text, values) in enumerate(zip(fc["date"].astype(str), numbers, strict=True), start=1):
        target = origin + dt.timedelta(days=h)
        if text[:10] != target.isoformat() or not all(map(math.isfinite, values)):
            raise ArtifactError(f"{where.forecast_csv} row {h} ({text}) is not a forecast for "
                                f"{target}, {h} days after the last close {origin} — {fix}")
        days.append(ForecastDay(target, h, float(values[0]), {
            b: (float(values[1 + 2 * i]), float(values[2 + 2 * i])) for i, b in enumerate(bands)}))
    commit, dirty = git_commit()
    forecast = ServedForecast(
        ticker=ticker, origin=origin, as_of=as_of, days=days, served=evaluation.serving.served,
        model_name=info.registered_model, model_version=str(info.model_version),
        run_id=info.run_id, data_sha256=str(meta.get("sha256", "")),
        git_commit=commit + ("+dirty" if dirty else ""))
    closes = [(d.date(), float(c)) for d, c in zip(series.index, series["close"], strict=True)]
    return forecast, closes, evaluation


@dataclass(frozen=True)
class TickerRefreshed:
    """What a refresh did for one ticker: the ledger write, the alarm's reasons (empty: not
    fired) and whether it retrained."""

    ticker: str
    written: Written
    alarm: list[str]
    retrained: bool


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did: each listed ticker's outcome, and the stages DVC ran."""

    tickers: list[TickerRefreshed]
    stages: list[str]

    @property
    def alarm(self) -> list[str]:
        """Every ticker's alarm reasons, each naming its ticker."""
        return [f"{t.ticker}: {reason}" for t in self.tickers for reason in t.alarm]

    @property
    def retrained(self) -> list[str]:
        """The tickers whose training cut moved."""
        return [t.ticker for t in self.tickers if t.retrained]


def score_and_report(ledger: Ledger, forecast: ServedForecast, evaluation: EvaluationReport,
                     max_skill: float, *, log_to_mlflow: bool) -> list[str]:
    """Score the ledger's record of this ticker, write reports/<TICKER>/track_record.{json,md,
    png}, and return the alarm's reasons (noted in the ledger, and on the run)."""
    from crypto_forecast.live.ledger import EXPORT_COLUMNS
    from crypto_forecast.live.track_record import (
        alarm,
        closes_series,
        export_frame,
        nan_to_none,
        track_record,
    )
    from crypto_forecast.report.track_record import render_cones, render_track_markdown

    ticker = forecast.ticker
    where = paths.for_ticker(ticker)
    export = export_frame(ledger.export_rows(ticker), EXPORT_COLUMNS)
    closes = closes_series(ledger.closes(ticker))
    bands = {b.name: b.nominal for b in evaluation.bands if b.name in ("80", "95")}
    record = track_record(export, closes, bands)
    reasons = alarm(export, closes, bands, max_skill)
    if reasons:
        ledger.record_alarm(ticker, forecast.as_of, reasons)
    names = list(bands)
    atomic.write_all({
        where.track_record_json: json.dumps(nan_to_none(
            {"ticker": ticker, "as_of": str(forecast.as_of), "alarm": reasons, **record}),
            indent=2) + "\n",
        where.track_record_md: render_track_markdown(ticker, str(forecast.as_of), record,
                                                     reasons, evaluation, names),
        where.track_record_png: render_cones(closes, export, ticker, names[0] if names else "80"),
    })
    if log_to_mlflow and record["windows"]:
        from crypto_forecast.tracking.runs import log_live

        pooled = record["windows"]["all"]["pooled"]
        h1 = record["windows"]["all"]["by_horizon"].get("1", pooled)
        metrics = {"live_scored": float(record["scored"]), "live_rmse": pooled["rmse"],
                   "live_rmse_h1": h1["rmse"], "live_mae": pooled["mae"]}
        if pooled["skill_vs_persistence"] is not None:
            metrics["live_skill_vs_persistence"] = pooled["skill_vs_persistence"]
        for b, band in pooled["bands"].items():
            metrics[f"live_coverage_{b}"] = band["coverage"]
            metrics[f"live_interval_score_{b}"] = band["interval_score"]
        log_live(forecast.run_id, {k: float(v) for k, v in metrics.items() if v is not None},
                 {"live_alarm": "; ".join(reasons)} if reasons else {}, step=record["origins"])
    return reasons


def refresh(as_of: dt.date | None = None, ledger_path: str | None = None, *,
            echo: bool = True) -> Refreshed:
    """Run the pipeline as of the morning of `as_of` (default: today in UTC) for every listed
    ticker and record each served forecast, then score each record. Returns what the ledger
    wrote and the alarms."""
    started = time.perf_counter()
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    params = load_params()
    tickers = params.download.tickers
    digest = training_digest(params)
    with Ledger.open(ledger_uri(ledger_path)) as ledger:
        decisions: dict[str, RetrainDecision] = {}
        cuts: dict[str, dt.date | None] = {}
        for ticker in tickers:
            last = ledger.last_refresh(ticker)
            if last is not None and as_of < last.as_of:
                raise RefreshError(f"as of {as_of} is before the ledger's last refresh of "
                                   f"{ticker} ({last.as_of}) — a ledger runs forward: refresh as "
                                   f"of {last.as_of} or later, or use another --ledger")
            # The ledger, not live.yaml, says where each cut stands: another ledger's refreshes
            # (a replay) may have moved live.yaml since.
            last_retrain = ledger.last_retrain(ticker)
            standing = last_retrain.trained_through if last_retrain else None
            raised = ledger.alarm_after(ticker, last_retrain.as_of if last_retrain else None)
            decision = retrain_due(as_of=as_of, train_cut=standing, last_retrain=last_retrain,
                                   params_digest=digest,
                                   every_days=params.refresh.retrain_every_days, alarm=raised)
            decisions[ticker] = decision
            cuts[ticker] = as_of - dt.timedelta(days=1) if decision.due else standing
            log.info("%s as of %s (closes through %s); retrain: %s — %s", ticker, as_of,
                     as_of - dt.timedelta(days=1), "yes" if decision.due else "no",
                     decision.reason)
        new_live = LiveParams(as_of=as_of, train_cut=_one_or_each(cuts))  # validates cut < as_of
        new_live.data_end(params.download)
        check_real_source(params, as_of)
        previous = paths.LIVE_PARAMS.read_text(encoding="utf-8") \
            if paths.LIVE_PARAMS.exists() else None
        if previous != live_yaml(new_live):
            atomic.write_text(paths.LIVE_PARAMS, live_yaml(new_live))
        try:
            done = run_dvc_repro({REAL_DATA_ONLY_ENV: "1"}, echo=echo, keep_going=True)
            failed = _failures(done, echo=echo)
            healthy = [t for t in tickers if t not in failed]
            if not healthy:
                raise RefreshError(_failed_line(done, failed) + "; live.yaml is put back and the "
                                   "earlier outputs restored with `dvc checkout` — fix that and "
                                   "rerun the refresh")
            served = {ticker: served_forecast(ticker, as_of) for ticker in healthy}
        except BaseException:
            _restore(previous)
            raise
        stages = done.ran
        outcomes = []
        for ticker in healthy:
            forecast, closes, evaluation = served[ticker]
            decision = decisions[ticker]
            written = ledger.record(forecast, closes, RefreshFacts(
                ticker=ticker, as_of=as_of, origin=forecast.origin,
                trained_through=cuts[ticker] or forecast.origin,
                retrained=decision.due, reason=decision.reason, params_digest=digest,
                stages=stages))
            reasons = score_and_report(ledger, forecast, evaluation,
                                       params.refresh.alarm_max_skill,
                                       log_to_mlflow=not written.nothing)
            outcomes.append(TickerRefreshed(ticker, written, reasons, decision.due))
            _report(ledger.where, forecast, written, reasons)
    log.info("stages run: %s", ", ".join(stages) if stages else "none (all up to date)")
    log.info("refresh took %.1f s", time.perf_counter() - started)
    if failed:
        # The healthy tickers' forecasts are recorded; the failed ones' are not, and say why.
        raise RefreshError(_failed_line(done, failed) + f" — {', '.join(healthy)} recorded; "
                           "fix that and rerun the refresh (it records the missing ones)")
    return Refreshed(outcomes, stages)


def _failures(done: ReproRun, *, echo: bool) -> dict[str, str]:
    """The tickers whose chain failed; a failure outside every ticker's chain (the summary)
    fails the whole refresh."""
    if done.code == 0:
        return {}
    if not echo:
        sys.stderr.write("".join(done.tail))
    elsewhere = done.failed_elsewhere()
    if elsewhere or not done.failed_tickers():
        raise RefreshError(_failed_line(done, {}) + "; live.yaml is put back and the earlier "
                           "outputs restored with `dvc checkout` — fix that and rerun the refresh")
    return done.failed_tickers()


def _failed_line(done: ReproRun, failed: dict[str, str]) -> str:
    causes = failed or {stage: cause for stage, cause in done.failed.items()}
    return "`dvc repro` failed: " + "; ".join(f"{k} in {v}" if k in failed else f"{k}: {v}"
                                              for k, v in causes.items())


def _one_or_each(cuts: dict[str, dt.date | None]) -> dt.date | dict[str, dt.date] | None:
    """live.yaml's train_cut: one day when every ticker shares it (always, for one ticker),
    else a day per ticker."""
    days = set(cuts.values())
    if len(days) == 1:
        return days.pop()
    return {ticker: day for ticker, day in cuts.items() if day is not None}


def _report(where: str, forecast: ServedForecast, written: Written, reasons: list[str]) -> None:
    ticker = forecast.ticker
    if written.nothing:
        log.info("%s: the ledger %s already holds this forecast for %s: nothing written", ticker,
                 where, forecast.origin)
    else:
        what = ("no new forecast" if written.revision is None else
                f"the forecast from {forecast.origin} as revision {written.revision}")
        log.info("%s: ledger %s: wrote %s, %d new close(s)", ticker, where, what,
                 written.new_closes)
    head = forecast.days[0]
    log.info("%s served %s: %s %.2f (80%% band %s), ... %s %.2f", ticker, forecast.served,
             head.target_date, head.forecast, _band(head, "80"), forecast.days[-1].target_date,
             forecast.days[-1].forecast)
    log.info("%s track record: %s", ticker, paths.for_ticker(ticker).track_record_md)
    for reason in reasons:
        log.warning("ALARM %s: %s — the next refresh retrains it (exit 3)", ticker, reason)


def _band(day: ForecastDay, name: str) -> str:
    band = day.bands.get(name)
    return "n/a" if band is None else f"{band[0]:.2f} .. {band[1]:.2f}"


def check_real_source(params: Params, as_of: dt.date) -> None:
    """Refuse, before anything changes, a refresh that would forecast from synthetic data:
    `source: synthetic`, or `source: auto` while Yahoo cannot be reached (download would fall
    back). `yahoo` and `csv` never fall back."""
    cfg = params.download
    if cfg.source == "synthetic":
        raise RefreshError("download.source is synthetic; the ledger records forecasts from real "
                           "closes only — set download.source to auto, yahoo or csv")
    if cfg.source != "auto":
        return
    from crypto_forecast.data import yahoo
    from crypto_forecast.errors import SourceEmptyError, SourceUnavailableError

    ticker = cfg.tickers[0]  # Yahoo is reachable for all or for none
    try:
        yahoo.fetch_yahoo(ticker, as_of - dt.timedelta(days=14), as_of)
    except SourceUnavailableError:
        raise RefreshError(f"Yahoo cannot be reached for {ticker}, and download.source: auto "
                           "would fall back to SYNTHETIC data; the ledger records real closes "
                           "only — retry when online, or set download.source: csv with "
                           "download.csv_dir") from None
    except SourceEmptyError:
        pass  # download reports it, with its fix
