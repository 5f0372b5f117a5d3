"""The portfolio summary: one row per listed ticker, from the cards its forecast stage wrote
(io.contracts.TickerCard), as DVC's headline metrics, JSON, Markdown, one self-contained HTML
page, and one chart of every forecast cone normalised to its last close.

Only the tickers download.tickers lists appear, in its order. A listed ticker whose card is
missing or unreadable is a row marked failed, with the reason, and never numbers."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto_forecast.errors import ArtifactError
from crypto_forecast.io import paths
from crypto_forecast.io.contracts import TickerCard

# The band the summary's table shows (the narrowest, when a run has no 80 % band).
SUMMARY_BAND = "80"


@dataclass(frozen=True)
class Row:
    """A listed ticker: its card, or why it has none."""

    ticker: str
    card: TickerCard | None
    failure: str | None = None


def read_rows(tickers: tuple[str, ...], failed: dict[str, str] | None = None) -> list[Row]:
    """Every listed ticker's card, in the listed order; a missing or damaged card, or a ticker
    in `failed` (ticker -> why: its card, if any, is from an earlier run), is a failed row."""
    rows = []
    for ticker in tickers:
        if failed and ticker in failed:
            rows.append(Row(ticker, None, failed[ticker]))
            continue
        path = paths.for_ticker(ticker).card
        if not path.exists():
            rows.append(Row(ticker, None, f"no forecast ({path} is missing) — run "
                                          f"`dvc repro forecast@{ticker}` and read its ERROR"))
            continue
        try:
            rows.append(Row(ticker, TickerCard.read(path, f"forecast@{ticker}")))
        except ArtifactError as exc:
            rows.append(Row(ticker, None, str(exc)))
    return rows


def headline(rows: list[Row]) -> dict[str, Any]:
    """reports/metrics.json, what `dvc exp show` compares. One ticker: its own headline, flat,
    as it always was. Several: each ticker's 1-day skill (its RMSE over persistence's) under
    its symbol, so three tickers and the params an experiment changed fit 120 columns; every
    other number is in summary.json and each ticker's evaluation.json."""
    if len(rows) == 1:
        card = rows[0].card
        return dict(card.headline.metrics_file()) if card else {"failed": 1}
    out: dict[str, Any] = {}
    for row in rows:
        out[row.ticker] = {"skill_h1": row.card.headline.skill_h1} if row.card else {"failed": 1}
    return out


def _band(card: TickerCard) -> str:
    names = list(card.headline.coverage)
    return SUMMARY_BAND if SUMMARY_BAND in names else names[0]


def as_json(rows: list[Row]) -> dict[str, Any]:
    """summary.json: every row with its numbers (null where undefined) or its failure."""
    out: list[dict[str, Any]] = []
    for row in rows:
        card = row.card
        if card is None:
            out.append({"ticker": row.ticker, "status": "failed", "failure": row.failure})
            continue
        head = card.headline
        band = _band(card)
        last = card.days[-1]
        out.append({
            "ticker": row.ticker, "status": "ok", "source": card.source_used,
            "synthetic": card.synthetic, "served": card.served, "reasons": card.reasons,
            "skill_h1": head.skill_h1, f"skill_h{head.horizon}": head.skill_hmax,
            "coverage": head.coverage, "interval_skill": head.interval_skill,
            "last_date": card.data_last, "last_close": card.last_close,
            "forecast_date": last.date, "forecast": last.forecast, "band": band,
            "lower": last.lower.get(band), "upper": last.upper.get(band),
            "run_id": card.run_id})
    return {"tickers": out}


def _num(value: float | None, spec: str = ".3f") -> str:
    return "undefined" if value is None else format(value, spec)


def _price(value: float | None) -> str:
    if value is None:
        return "unbounded"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.6g}"


def table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The summary's table: one row per ticker, failed ones marked with their reason."""
    cards = [r.card for r in rows if r.card]
    horizon = cards[0].headline.horizon if cards else 0
    bands = list(cards[0].headline.coverage) if cards else []
    headers = ["ticker", "data", "served", "skill h1", f"skill h{horizon}",
               *(f"coverage {b} %" for b in bands), *(f"interval skill {b}" for b in bands),
               "last close", "forecast", f"{SUMMARY_BAND} % band"]
    body = []
    for row in rows:
        card = row.card
        if card is None:
            body.append([row.ticker, "—", f"FAILED: {row.failure}", *[""] * (len(headers) - 3)])
            continue
        head, band, last = card.headline, _band(card), card.days[-1]
        served = "LSTM" if card.served == "lstm" else "naive (last close)"
        body.append([
            row.ticker, f"{card.source_used.upper() if card.synthetic else card.source_used}",
            served, _num(head.skill_h1), _num(head.skill_hmax),
            *(f"{head.coverage[b] * 100:.1f}" if b in head.coverage else "" for b in bands),
            *(_num(head.interval_skill.get(b)) for b in bands),
            f"{_price(card.last_close)} ({card.data_last})",
            f"{_price(last.forecast)} ({last.date})",
            f"{_price(last.lower.get(band))} .. {_price(last.upper.get(band))}"])
    return headers, body


NOTES = [
    "Skill: the LSTM's walk-forward RMSE over persistence's (the last close) at that many days "
    "ahead; below 1 beats it.",
    "Coverage: the share of walk-forward outcomes inside the served band; interval skill: its "
    "interval score over the naive forecaster's bands (below 1 is better).",
    "Forecast: the served forecast for the last day of the horizon, with its band.",
]


def _reasons(rows: list[Row]) -> list[str]:
    return [f"{r.ticker}: {'; '.join(r.card.reasons)}" for r in rows if r.card]


def _synthetic(rows: list[Row]) -> list[str]:
    return [r.ticker for r in rows if r.card and r.card.synthetic]


def render_markdown(rows: list[Row], chart_name: str) -> str:
    headers, body = table(rows)
    lines = ["# Portfolio summary", ""]
    fake = _synthetic(rows)
    if fake:
        lines += [f"> **SYNTHETIC DATA for {', '.join(fake)}**: simulated prices, not real ones "
                  "(Yahoo was unreachable or `download.source: synthetic`).", ""]
    failed = [r.ticker for r in rows if r.card is None]
    if failed:
        lines += [f"> **FAILED: {', '.join(failed)}** — no numbers are shown for "
                  f"{'it' if len(failed) == 1 else 'them'}.", ""]
    lines += ["| " + " | ".join(headers) + " |",
              "| --- | --- | --- |" + " ---: |" * (len(headers) - 3),
              *("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body), ""]
    lines += [f"- {note}" for note in NOTES] + [""]
    lines += ["## Why each is served", ""] + [f"- {r}" for r in _reasons(rows)] + [""]
    lines += [f"![every forecast cone, as a multiple of its last close]({chart_name})", ""]
    return "\n".join(lines)


def render_html(rows: list[Row], png: bytes) -> str:
    """One file that opens offline: styles inline, the chart as a data URI."""
    esc = html.escape
    headers, body = table(rows)
    fake = _synthetic(rows)
    failed = [r.ticker for r in rows if r.card is None]
    banners = ""
    if fake:
        banners += (f'<div class="banner"><strong>SYNTHETIC DATA for {esc(", ".join(fake))}'
                    "</strong>: simulated prices, not real ones.</div>")
    if failed:
        banners += (f'<div class="banner"><strong>FAILED: {esc(", ".join(failed))}</strong> — '
                    "no numbers are shown for them.</div>")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    trs = "".join(
        f'<tr class="{"failed" if r[2].startswith("FAILED") else "ok"}">'
        + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body)
    chart = ('<img alt="every forecast cone, as a multiple of its last close" '
             f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Portfolio summary</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 90rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }}
.banner {{ background: #fdecea; border: 2px solid #c0392b; padding: .8rem; margin-bottom: 1rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }}
th, td {{ border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }}
th:nth-child(-n+3), td:nth-child(-n+3) {{ text-align: left; }}
td:not(:nth-child(3)) {{ white-space: nowrap; }}
tr.failed td {{ color: #c0392b; }}
img {{ max-width: 100%; }}
</style></head><body>
{banners}
<h1>Portfolio summary</h1>
<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>
<ul>{"".join(f"<li>{esc(n)}</li>" for n in NOTES)}</ul>
<h2>Why each is served</h2>
<ul>{"".join(f"<li>{esc(r)}</li>" for r in _reasons(rows))}</ul>
{chart}
</body></html>
"""


def render_chart(rows: list[Row]) -> bytes:
    """Every ticker's served forecast and its band, as a multiple of its last close, on one
    chart (an empty one, saying so, when no ticker has a forecast)."""
    cards = [r.card for r in rows if r.card]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from crypto_forecast.report.render import finish_png

    fig = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = ["#1f4e79", "#d35400", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"]
    for i, card in enumerate(cards):
        color = colors[i % len(colors)]
        band = _band(card)
        steps = list(range(len(card.days) + 1))
        base = card.last_close
        mid = [1.0, *(d.forecast / base for d in card.days)]
        lower = [1.0, *((d.lower.get(band) or 0.0) / base for d in card.days)]
        upper = [1.0, *((d.upper.get(band) or float("nan")) / base for d in card.days)]
        ax.fill_between(steps, lower, upper, color=color, alpha=0.10, lw=0)
        for edge in (lower, upper):
            ax.plot(steps, edge, color=color, lw=0.8, ls=":")
        label = f"{card.ticker}{' (synthetic)' if card.synthetic else ''}, {band} % band"
        ax.plot(steps, mid, color=color, lw=2, marker="o", ms=3, label=label)
    if not cards:
        ax.text(0.5, 0.5, "no ticker has a forecast", ha="center", va="center",
                transform=ax.transAxes)
    ax.axhline(1.0, color="#555", lw=0.8, ls="--")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("days ahead")
    ax.set_ylabel("forecast / last close")
    return finish_png(fig, ax, "Every forecast cone, as a multiple of its last close")


def write_summary(tickers: tuple[str, ...], failed: dict[str, str] | None = None) -> list[Row]:
    """Read the cards and write every summary file in one atomic step; returns the rows."""
    from crypto_forecast.io import atomic

    rows = read_rows(tickers, failed)
    atomic.write_all(write_all(rows))
    return rows


def write_all(rows: list[Row]) -> dict[Path, str | bytes]:
    """Every file the summary stage writes, with its content."""
    png = render_chart(rows)
    return {
        paths.METRICS: json.dumps(headline(rows), indent=2, allow_nan=False) + "\n",
        paths.SUMMARY_JSON: json.dumps(as_json(rows), indent=2, allow_nan=False) + "\n",
        paths.SUMMARY_MD: render_markdown(rows, paths.SUMMARY_PNG.name),
        paths.SUMMARY_HTML: render_html(rows, png),
        paths.SUMMARY_PNG: png,
    }
