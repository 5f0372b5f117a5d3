"""The track record: how the forecasts actually served did on the days that came after.

Pure functions over the ledger's export (one row per served day) and the closes it kept.
Only first forecasts (revision 0) are scored; a target day without a close yet is pending,
not a miss. Persistence from the same origin (the origin's close) is the benchmark.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from crypto_forecast.evaluation.metrics import interval_score, mae, rmse

# Windows of the record, by the number of latest scored origins (None: all of it).
WINDOWS: dict[str, int | None] = {"all": None, "last_90": 90, "last_30": 30}
ALARM_OUTCOMES = 30  # the last 30 scored 1-day outcomes (and origins) the alarm reads
ALARM_CONFIDENCE = 0.99


def wilson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a coverage of hits/n (scipy's binomtest; scipy is loaded
    for the alarm's binomial range anyway, statsmodels would add ~0.2 s to every refresh)."""
    from scipy.stats import binomtest

    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = ci.low, ci.high
    # Exactly 0 and 1 at the ends (the formula leaves a rounding error there).
    return (0.0 if hits == 0 else float(lo)), (1.0 if hits == n else float(hi))


def binomial_range(n: int, p: float, confidence: float = ALARM_CONFIDENCE) -> tuple[int, int]:
    """The counts of n outcomes a band of nominal coverage p holds with the given probability
    (central binomial range, scipy): outside it, the band is not holding."""
    from scipy.stats import binom

    tail = (1 - confidence) / 2
    return int(binom.ppf(tail, n, p)), int(binom.ppf(1 - tail, n, p))


def scored_rows(export: pd.DataFrame, closes: pd.Series) -> tuple[pd.DataFrame, int]:
    """(first forecasts with an actual, each with `persistence` = its origin's close; the
    number still pending)."""
    first = export[export["revision"] == 0]
    has_actual = first["actual"].notna()
    scored = first[has_actual].copy()
    scored["persistence"] = scored["origin"].map(closes)
    scored = scored[scored["persistence"].notna()]
    return scored.sort_values(["origin", "horizon"]), int((~has_actual).sum())


def _last_origins(scored: pd.DataFrame, n: int | None) -> pd.DataFrame:
    if n is None:
        return scored
    kept = sorted(scored["origin"].unique())[-n:]
    return scored[scored["origin"].isin(kept)]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _scores(rows: pd.DataFrame, bands: dict[str, float]) -> dict[str, Any]:
    actual = rows["actual"].to_numpy(dtype=float)
    fc = rows["forecast"].to_numpy(dtype=float)
    naive = rows["persistence"].to_numpy(dtype=float)
    model_rmse, naive_rmse = rmse(actual, fc), rmse(actual, naive)
    out: dict[str, Any] = {
        "n": len(rows), "rmse": model_rmse, "mae": mae(actual, fc),
        "persistence_rmse": naive_rmse,
        "skill_vs_persistence": _finite(model_rmse / naive_rmse) if naive_rmse > 0 else None,
        "bands": {}}
    for name, level in bands.items():
        lo = rows[f"lower_{name}"].to_numpy(dtype=float)
        hi = rows[f"upper_{name}"].to_numpy(dtype=float)
        hits = int(((actual >= lo) & (actual <= hi)).sum())
        ci = wilson(hits, len(rows))
        out["bands"][name] = {"nominal": level, "hits": hits, "coverage": hits / len(rows),
                              "coverage_ci95": list(ci),
                              "interval_score": interval_score(actual, lo, hi, level)}
    return out


def track_record(export: pd.DataFrame, closes: pd.Series, bands: dict[str, float]) -> dict[str, Any]:
    """The record of one ticker: per window (all, last 90, last 30 origins), the scores by
    horizon and pooled; counts of scored and pending forecasts."""
    scored, pending = scored_rows(export, closes)
    out: dict[str, Any] = {"scored": len(scored), "pending": pending,
                           "origins": int(scored["origin"].nunique()), "windows": {}}
    if scored.empty:
        return out
    out["first_origin"] = str(scored["origin"].min())
    out["last_origin"] = str(scored["origin"].max())
    for window, n in WINDOWS.items():
        rows = _last_origins(scored, n)
        out["windows"][window] = {
            "origins": int(rows["origin"].nunique()),
            "pooled": _scores(rows, bands),
            "by_horizon": {str(h): _scores(part, bands)
                           for h, part in rows.groupby("horizon", sort=True)}}
    return out


def alarm(export: pd.DataFrame, closes: pd.Series, bands: dict[str, float],
          max_skill: float) -> list[str]:
    """Why the forecasts stopped holding, if they did (empty: no alarm): a band held the last
    30 scored 1-day outcomes outside the 99 % binomial range of its nominal coverage, or the
    realized skill against persistence over the last 30 origins is above `max_skill`."""
    scored, _ = scored_rows(export, closes)
    reasons = []
    one_day = scored[scored["horizon"] == 1].tail(ALARM_OUTCOMES)
    if len(one_day) == ALARM_OUTCOMES:
        actual = one_day["actual"].to_numpy(dtype=float)
        for name, level in bands.items():
            hits = int(((actual >= one_day[f"lower_{name}"].to_numpy(dtype=float))
                        & (actual <= one_day[f"upper_{name}"].to_numpy(dtype=float))).sum())
            lo, hi = binomial_range(ALARM_OUTCOMES, level)
            if not lo <= hits <= hi:
                reasons.append(f"the {name} % band held {hits} of the last {ALARM_OUTCOMES} 1-day "
                               f"outcomes, outside the 99 % range {lo}..{hi} of its nominal "
                               f"{level:.0%}")
    recent = _last_origins(scored, ALARM_OUTCOMES)
    if recent["origin"].nunique() == ALARM_OUTCOMES:
        actual = recent["actual"].to_numpy(dtype=float)
        naive = rmse(actual, recent["persistence"].to_numpy(dtype=float))
        skill = rmse(actual, recent["forecast"].to_numpy(dtype=float)) / naive if naive > 0 else 1.0
        if skill > max_skill:
            reasons.append(f"realized skill {skill:.3f} (RMSE / persistence's) over the last "
                           f"{ALARM_OUTCOMES} origins is above refresh.alarm_max_skill {max_skill}")
    return reasons


def export_frame(rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> pd.DataFrame:
    """The ledger's export rows as a typed frame (dates as dates, numbers as floats)."""
    frame = pd.DataFrame(rows, columns=list(columns))
    for column in ("forecast", "lower_80", "upper_80", "lower_95", "upper_95", "actual"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["horizon"] = frame["horizon"].astype(int)
    frame["revision"] = frame["revision"].astype(int)
    return frame


def closes_series(closes: list[tuple[Any, float]]) -> pd.Series:
    return pd.Series({day: float(value) for day, value in closes}, dtype=float)


def nan_to_none(value: Any) -> Any:
    """JSON-safe: NaN and infinities as null, recursively."""
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value
