"""The track record as a person reads it: reports/track_record.md and its cone chart."""

from __future__ import annotations

from typing import Any

import pandas as pd

from crypto_forecast.io.contracts import EvaluationReport
from crypto_forecast.report.render import price_chart_png

WINDOW_TITLES = {"all": "whole record", "last_90": "last 90 origins", "last_30": "last 30 origins"}


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _coverage(band: dict[str, Any]) -> str:
    lo, hi = band["coverage_ci95"]
    return f"{band['coverage']:.0%} [{lo:.0%}, {hi:.0%}]"


def walk_forward_estimate(evaluation: EvaluationReport, horizon: int) -> dict[str, Any]:
    """What walk-forward expected of the served forecaster at `horizon`: its skill against
    persistence and each band's coverage (the naive forecaster is persistence itself)."""
    served = evaluation.serving.served
    if served == "lstm" and horizon <= len(evaluation.horizons):
        return {"skill": evaluation.at(horizon).skill_rmse,
                "coverage": {b.name: b.horizons[horizon - 1].coverage for b in evaluation.bands}}
    return {"skill": 1.0, "coverage": {b.name: b.naive_coverage for b in evaluation.bands}}


def render_track_markdown(ticker: str, as_of: str, record: dict[str, Any], alarm: list[str],
                          evaluation: EvaluationReport, bands: list[str]) -> str:
    lines = [f"# {ticker}: track record of the served forecasts, as of {as_of}", ""]
    if not record["windows"]:
        lines += [f"No served forecast has reached its target day yet ({record['pending']} "
                  "pending). The record fills as refreshes see the closes.", ""]
        return "\n".join(lines)
    lines += [f"{record['scored']} first forecasts scored against what happened, from "
              f"{record['origins']} origins ({record['first_origin']} .. "
              f"{record['last_origin']}); {record['pending']} pending (target day not seen "
              "yet, not counted as misses). Revisions are never scored. Skill is RMSE over "
              "persistence's from the same origin: below 1 beats it.", ""]
    lines += ["## Track record", "",
              f"Realized by days ahead (whole record) beside walk-forward's estimate for the "
              f"served {evaluation.serving.served} forecaster. Coverage shows its 95 % Wilson "
              "interval.", ""]
    head = ["days ahead", "scored", "RMSE", "MAE", "skill", "walk-forward skill"]
    for b in bands:
        head += [f"{b} % coverage", f"walk-forward {b} %", f"{b} % Winkler"]
    rows = []
    for h, s in record["windows"]["all"]["by_horizon"].items():
        est = walk_forward_estimate(evaluation, int(h))
        row = [h, str(s["n"]), _num(s["rmse"], 2), _num(s["mae"], 2),
               _num(s["skill_vs_persistence"]), _num(est["skill"])]
        for b in bands:
            row += [_coverage(s["bands"][b]), f"{est['coverage'][b]:.0%}",
                    _num(s["bands"][b]["interval_score"], 1)]
        rows.append(row)
    lines += _table(head, rows)
    lines += ["", "## Windows (all days ahead pooled)", ""]
    head = ["window", "origins", "scored", "RMSE", "skill"] + [f"{b} % coverage" for b in bands]
    rows = []
    for window, w in record["windows"].items():
        p = w["pooled"]
        rows.append([WINDOW_TITLES[window], str(w["origins"]), str(p["n"]), _num(p["rmse"], 2),
                     _num(p["skill_vs_persistence"])] + [_coverage(p["bands"][b]) for b in bands])
    lines += _table(head, rows)
    lines += ["", "## Alarm", ""]
    lines += ([f"- **FIRED**: {reason}" for reason in alarm] + ["", "The next refresh retrains."]
              if alarm else ["Not fired: the bands hold and the skill is within its bound "
                             "(or fewer than 30 outcomes are scored yet)."])
    lines += ["", "![past forecast cones against what happened](track_record.png)", ""]
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(r) + " |" for r in rows)]


def render_cones(closes: pd.Series, export: pd.DataFrame, ticker: str, band: str,
                 origins: int = 30) -> bytes:
    """The last `origins` first forecasts as cones (forecast and band) over the closes that
    came, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first = export[export["revision"] == 0]
    kept = sorted(first["origin"].unique())[-origins:]
    fig = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if kept:
        start = pd.Timestamp(kept[0]) - pd.Timedelta(days=10)
        shown = closes[pd.DatetimeIndex(closes.index) >= start]
        ax.plot(pd.DatetimeIndex(shown.index), shown.to_numpy(), color="#1f4e79", lw=1.6,
                label="close (what happened)", zorder=3)
    for i, origin in enumerate(kept):
        cone = first[first["origin"] == origin].sort_values("horizon")
        days = pd.DatetimeIndex([pd.Timestamp(origin), *pd.to_datetime(cone["target_date"])])
        start_close = float(closes.get(origin, cone["forecast"].iloc[0]))
        ax.fill_between(days, [start_close, *cone[f"lower_{band}"]],
                        [start_close, *cone[f"upper_{band}"]], color="#d35400", alpha=0.06, lw=0,
                        label=f"{band} % band" if i == 0 else None)
        ax.plot(days, [start_close, *cone["forecast"]], color="#d35400", lw=0.8, alpha=0.6,
                label="served forecasts" if i == 0 else None)
    return price_chart_png(fig, ax, f"{ticker}: the last {len(kept)} served forecasts against "
                                    "what happened")
