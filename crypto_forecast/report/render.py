"""The forecast report a person reads: a verdict computed from the backtest, the next days
with their bands, a chart, and the LSTM-vs-baselines table; as Markdown and as one
self-contained HTML file (chart embedded as base64 PNG). Pure functions of their inputs.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Any

import pandas as pd

from crypto_forecast.io.contracts import EvaluationReport, HorizonScores, TrainedModel

# Within this many points of the nominal level a band counts as calibrated (the issue's
# 75-85 % for an 80 % band), and never more than half the nominal miss rate (92.5-97.5 %
# for a 95 % band).
COVERAGE_TOLERANCE = 0.05
# Skill within 1 ± this is a tie with persistence.
SKILL_TIE = 0.02

LABELS = {"lstm": "LSTM", "persistence": "persistence", "drift": "drift",
          "moving_average": "moving avg"}


@dataclass(frozen=True)
class ReportContext:
    """Everything the report states besides evaluate's numbers."""

    ticker: str
    source_used: str
    data_first: str
    data_last: str
    days: int
    sha256: str
    run_id: str
    param_count: int
    units: str
    window: int
    target: str
    git_commit: str
    history_days: int
    live: TrainedModel  # the served network: the days it learned from and stopped early on
    made_on: str = ""  # the morning the forecast was made: the day after the last close seen
    trained_through: str = ""  # the last close the networks learned from (the training cut)


def verdict(evaluation: EvaluationReport) -> str:
    """The plain-words judgement of the forecast, computed from the walk-forward backtest."""
    period, steps = evaluation.test_period, evaluation.horizons
    horizon = len(steps)
    s1 = steps[0].skill_rmse
    head = (f"Walk-forward over {period.first} .. {period.last} ({evaluation.backtest.folds} "
            "cut-offs, each model retrained on the days before its own), the LSTM's 1-day error "
            "(RMSE) ")
    if s1 is None:
        head += ("cannot be compared with persistence's, which is zero (the prices never "
                 "move): read the forecast as today's price ± the band.")
    else:
        head += f"is {s1:.2f}× persistence's"
        if s1 > 1 + SKILL_TIE:
            head += "; treat this forecast as no better than today's price ± the band."
        elif s1 >= 1 - SKILL_TIE:
            head += (", a tie: the model adds nothing measurable over today's price; read the "
                     "forecast as today's price ± the band.")
        else:
            head += f", {(1 - s1) * 100:.0f}% lower: a small, measured edge over today's price."
    skills = [s.skill_rmse for s in steps]
    wins = [h for h, s in enumerate(skills, start=1) if s is not None and s < 1]
    if horizon > 1 and skills[-1] is not None:
        which = f" (h = {', '.join(map(str, wins))})" if 0 < len(wins) < horizon else ""
        head += (f" Over 1..{horizon} days it beats persistence at {len(wins)} of {horizon} "
                 f"horizons{which}; at {horizon} days its error is {skills[-1]:.2f}× persistence's.")
    mases = [s.lstm.mase for s in steps]
    known = [m for m in mases if m is not None]
    over = [h for h, m in enumerate(mases, start=1) if m is not None and m > 1]
    if over and mases[-1] is not None:
        head += (f" Its MASE is above 1 from {over[0]} day{'s' if over[0] > 1 else ''} ahead "
                 f"(at {horizon}: {mases[-1]:.2f}), i.e. larger than the training period's "
                 "typical one-day move.")
    elif known and not over:
        head += f" Its MASE is at most {max(known):.2f} at every horizon."
    parts = []
    for b in evaluation.bands:
        tolerance = min(COVERAGE_TOLERANCE, (1 - b.nominal) / 2)
        if b.coverage < b.nominal - tolerance:
            note = "too narrow: expect more misses than the label says"
        elif b.coverage > b.nominal + tolerance:
            note = "wider than needed"
        else:
            note = "calibrated"
        parts.append(f"the {b.name}% band held {b.coverage * 100:.0f}% of outcomes ({note})")
    if parts:
        head += " Bands: " + "; ".join(parts) + "."
    return head


def what_is_served(evaluation: EvaluationReport) -> str:
    """The gate's decision in words: what `reports/forecast.csv` and the registry's champion
    hold, and why."""
    s = evaluation.serving
    what = ("the LSTM's forecast" if s.served == "lstm" else
            "the naive forecast: persistence (tomorrow = today's close) with its own calibrated "
            "bands, because the LSTM did not beat it")
    return (f"Served: {what}. The gate serves the LSTM only when its walk-forward skill (RMSE "
            f"over the best baseline's, persistence or drift) is below {s.max_skill_h1:g} at 1 "
            f"day and below {s.max_skill_mean:g} averaged over 1..{evaluation.backtest.horizon} "
            f"days, and it improves on the champion LSTM by at least "
            f"{s.min_gain_vs_champion:g}: " + "; ".join(s.reasons) + ".")


def forecast_headers(fc: pd.DataFrame, names: list[str]) -> list[str]:
    return ["date", "forecast", *(f"{n}% band" for n in names),
            *(["LSTM's forecast (not served)"] if "lstm_forecast" in fc else [])]


def headline_rows(fc: pd.DataFrame, names: list[str]) -> list[list[str]]:
    rows = []
    for day, row in fc.iterrows():
        cells = [str(pd.Timestamp(day).date()), f"{row['forecast']:,.2f}"]  # type: ignore[arg-type]
        cells += [f"{row[f'lower_{n}']:,.2f} .. {row[f'upper_{n}']:,.2f}" for n in names]
        if "lstm_forecast" in fc:
            cells.append(f"{row['lstm_forecast']:,.2f}")
        rows.append(cells)
    return rows


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "–" if value is None else format(value * scale, spec)


def _score_row(label: str, scores: HorizonScores, coverages: list[float]) -> list[str]:
    return [label, *(_fmt(p.rmse, ",.2f") for _, p in scores.predictors()),
            _fmt(scores.skill_rmse, ".3f"), _fmt(scores.lstm.mase, ".3f"),
            _fmt(scores.persistence.mase, ".3f"), _fmt(scores.lstm.direction, ".1f", 100),
            *(f"{c * 100:.1f}" for c in coverages)]


def backtest_rows(evaluation: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """LSTM vs baselines per horizon: RMSE of each, skill, MASE, direction, coverage."""
    bands = evaluation.bands
    headers = ["days ahead", *(f"{LABELS[name]} RMSE" for name, _ in evaluation.pooled.predictors()),
               "skill (LSTM / persistence)", "LSTM MASE", "persistence MASE", "LSTM direction %",
               *(f"{b.name}% band coverage" for b in bands)]
    rows = [_score_row(str(s.horizon), s, [b.horizons[s.horizon - 1].coverage for b in bands])
            for s in evaluation.horizons if s.horizon is not None]
    rows.append(_score_row("all", evaluation.pooled, [b.coverage for b in bands]))
    return headers, rows


def fold_rows(evaluation: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """Per walk-forward fold and pooled: skill at 1 day, the middle and the last horizon,
    band coverage and interval skill."""
    horizon = evaluation.backtest.horizon
    shown = sorted({1, (horizon + 1) // 2, horizon})
    bands = evaluation.bands
    headers = ["fold", "cut-off", "scored to", "origins", *(f"skill h{h}" for h in shown),
               *(f"{b.name}% coverage" for b in bands),
               *(f"{b.name}% interval skill" for b in bands)]
    rows = [[f.name, f.cutoff, f.last, str(f.origins),
             *(_fmt(f.skill[h - 1], ".3f") for h in shown),
             *(f"{f.coverage[b.name] * 100:.1f}" for b in bands),
             *(_fmt(f.interval_skill[b.name], ".3f") for b in bands)]
            for f in evaluation.folds]
    rows.append(["pooled", evaluation.test_period.first, evaluation.test_period.last,
                 str(evaluation.backtest.origins),
                 *(_fmt(evaluation.at(h).skill_rmse, ".3f") for h in shown),
                 *(f"{b.coverage * 100:.1f}" for b in bands),
                 *(_fmt(evaluation.headline.interval_skill.get(b.name), ".3f") for b in bands)])
    return headers, rows


def band_rows(evaluation: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    """Each band level, the LSTM's and the naive forecaster's: coverage, interval score and
    pinball loss (walk-forward, price units)."""
    headers = ["band", "forecaster", "coverage %", "interval score", "pinball loss"]
    rows = []
    for b in evaluation.bands:
        rows.append([f"{b.name}%", "LSTM", f"{b.coverage * 100:.1f}",
                     _fmt(b.interval_score, ",.2f"), _fmt(b.pinball, ",.2f")])
        rows.append([f"{b.name}%", "naive", f"{b.naive_coverage * 100:.1f}",
                     _fmt(b.naive_interval_score, ",.2f"), _fmt(b.naive_pinball, ",.2f")])
    return headers, rows


WALK_FORWARD_NOTE = (
    "Skill is the LSTM's RMSE over persistence's on the same origins (below 1 beats it); "
    "interval skill is the LSTM bands' interval (Winkler) score over the naive bands' (below 1 "
    "is better); coverage is the share of outcomes inside the band.")

BACKTEST_NOTE = (
    "Errors in price units, every fold pooled; skill below 1 means the LSTM beats persistence; "
    "MASE is scaled by fold 1's training period's mean one-day move; coverage is the share of "
    "outcomes inside the band.")


def _facts(ctx: ReportContext, evaluation: EvaluationReport) -> list[str]:
    target = "next-day log return, rebuilt into prices" if ctx.target == "log_return" else \
        "next-day price"
    bt = evaluation.backtest
    days = evaluation.bands[0].volatility_days if evaluation.bands else 0
    scaling = f", scaled by the last {days} days' volatility" if days else ""
    made = ([f"Forecast made on {ctx.made_on} from the closes through {ctx.data_last}; models "
             f"trained through {ctx.trained_through}"] if ctx.made_on else [])
    return [
        *made,
        f"Ticker {ctx.ticker}; data: {ctx.source_used} source, {ctx.data_first} .. {ctx.data_last} "
        f"({ctx.days} days), sha256 {ctx.sha256[:12]}",
        f"Model: LSTM {ctx.units}, window {ctx.window} days, models the {target}; "
        f"{ctx.param_count:,} parameters",
        f"Live model (the one forecasting): trained on {ctx.live.train_first} .. "
        f"{ctx.live.train_last}, stopped early on {ctx.live.val_first} .. {ctx.live.val_last} "
        f"(the latest days; epoch {ctx.live.best_epoch} kept); its scaler saw its training days "
        "only",
        f"MLflow run {ctx.run_id}; git commit {ctx.git_commit}",
        f"Walk-forward: {bt.folds} cut-offs; at each, a model trained with the same recipe on "
        f"the days before it only forecasts recursively from every origin up to the next "
        f"({bt.origins} origins in all); baselines on the same origins: persistence, drift "
        f"({bt.drift_per_day:+.2f}/day, the live model's data), moving average of "
        f"{bt.ma_window} days",
        f"Bands: split-conformal per horizon{scaling}; served widths calibrated on the live "
        f"model's {bt.calibration_origins} validation origins; coverage measured walk-forward, "
        "each fold calibrated the same way on its own",
    ]


SYNTHETIC_BANNER = (
    "SYNTHETIC DATA — NOT REAL PRICES. Yahoo Finance was unreachable (or "
    "`download.source: synthetic` was chosen), so this report is built on a seeded, simulated "
    "ETH-like series. Once online, run `dvc repro -f download` (or use `download.source: csv`) "
    "to rebuild it on real data."
)


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(headers) - 1)
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def render_markdown(ctx: ReportContext, evaluation: EvaluationReport, fc: pd.DataFrame,
                    chart_name: str) -> str:
    names = [b.name for b in evaluation.bands]
    lines: list[str] = []
    if ctx.source_used == "synthetic":
        lines += [f"> **{SYNTHETIC_BANNER.split('.')[0]}.**{SYNTHETIC_BANNER.split('.', 1)[1]}", ""]
    lines += [f"# {ctx.ticker}: {len(fc)}-day forecast", "",
              "## What is served and why", "", what_is_served(evaluation), "",
              f"**Verdict.** {verdict(evaluation)}", ""]
    lines += [f"- {fact}" for fact in _facts(ctx, evaluation)] + [""]
    lines += _md_table(forecast_headers(fc, names), headline_rows(fc, names))
    lines += ["", f"![last {ctx.history_days} days, the forecast and its bands]({chart_name})", ""]
    period = evaluation.test_period
    lines += [f"## Walk-forward, {period.first} .. {period.last}: skill per fold", "",
              WALK_FORWARD_NOTE, ""]
    lines += [*_md_table(*fold_rows(evaluation)), ""]
    lines += [*_md_table(*band_rows(evaluation)), ""]
    lines += ["## LSTM vs baselines by days ahead", "", BACKTEST_NOTE, ""]
    headers, rows = backtest_rows(evaluation)
    lines += [*_md_table(headers, rows), ""]
    return "\n".join(lines)


def render_html(ctx: ReportContext, evaluation: EvaluationReport, fc: pd.DataFrame,
                png: bytes) -> str:
    """One file that opens offline: styles inline, the chart as a data URI."""
    names = [b.name for b in evaluation.bands]
    esc = html.escape

    def table(headers: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    banner = (f'<div class="banner"><strong>{esc(SYNTHETIC_BANNER)}</strong></div>'
              if ctx.source_used == "synthetic" else "")
    period = evaluation.test_period
    headers, rows = backtest_rows(evaluation)
    chart = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(ctx.ticker)}: {len(fc)}-day forecast</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }}
.banner {{ background: #fdecea; border: 2px solid #c0392b; padding: .8rem; margin-bottom: 1rem; }}
.verdict {{ background: #eef4fa; border-left: 4px solid #1f4e79; padding: .8rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }}
th, td {{ border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
{banner}
<h1>{esc(ctx.ticker)}: {len(fc)}-day forecast</h1>
<h2>What is served and why</h2>
<p class="served">{esc(what_is_served(evaluation))}</p>
<p class="verdict"><strong>Verdict.</strong> {esc(verdict(evaluation))}</p>
<ul>{"".join(f"<li>{esc(f)}</li>" for f in _facts(ctx, evaluation))}</ul>
{table(forecast_headers(fc, names), headline_rows(fc, names))}
<img alt="last {ctx.history_days} days, the forecast and its bands" src="data:image/png;base64,{chart}">
<h2>Walk-forward, {esc(period.first)} .. {esc(period.last)}: skill per fold</h2>
<p>{esc(WALK_FORWARD_NOTE)}</p>
{table(*fold_rows(evaluation))}
{table(*band_rows(evaluation))}
<h2>LSTM vs baselines by days ahead</h2>
<p>{esc(BACKTEST_NOTE)}</p>
{table(headers, rows)}
</body></html>
"""


def render_chart(history: pd.Series, fc: pd.DataFrame, ticker: str, names: list[str],
                 synthetic: bool) -> bytes:
    """History, the forecast and its bands (widest lightest), as PNG bytes."""
    # The object API with the Agg canvas: no pyplot (whose import and backend set-up cost
    # ~0.7 s of this stage) and no global figure state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(history.index, history.to_numpy(), color="#1f4e79", lw=1.5, label="close (history)")
    days = [history.index[-1], *fc.index]
    for i, name in enumerate(reversed(names)):
        lower = [history.iloc[-1], *fc[f"lower_{name}"]]
        upper = [history.iloc[-1], *fc[f"upper_{name}"]]
        ax.fill_between(days, lower, upper, color="#d35400", alpha=0.15 + 0.15 * i, lw=0,
                        label=f"{name}% band")
    ax.plot(days, [history.iloc[-1], *fc["forecast"]], color="#d35400", lw=2, marker="o", ms=3,
            label=f"{len(fc)}-day forecast")
    title = f"{ticker}: last {len(history)} days and {len(fc)}-day forecast"
    if synthetic:
        title += "  [SYNTHETIC DATA]"
    return price_chart_png(fig, ax, title)


def price_chart_png(fig: Any, ax: Any, title: str) -> bytes:
    """Price axis and dated ticks, then `finish_png`."""
    ax.set_ylabel("price (USD)")
    fig.autofmt_xdate()
    return finish_png(fig, ax, title)


def finish_png(fig: Any, ax: Any, title: str) -> bytes:
    """Title, grid and legend, then the figure as PNG bytes."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    buf = io.BytesIO()
    # No timestamp in the PNG's metadata: the same numbers give the same bytes.
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()
