"""The track record equals an independent computation from the export, on generated ledgers;
the alarm fires on a regime change (volatility tripled) and not on a calm series."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_forecast.live.track_record import (
    ALARM_OUTCOMES,
    alarm,
    binomial_range,
    track_record,
    wilson,
)

BANDS = {"80": 0.8, "95": 0.95}
D0 = dt.date(2023, 1, 1)


def ledger_frame(closes: pd.Series, origins: list[dt.date], horizon: int, sigma: float,
                 revisions: int = 1) -> pd.DataFrame:
    """Naive forecasts (the origin's close) with bands of +-z*sigma*sqrt(h) in log terms."""
    rows = []
    for origin in origins:
        base = float(closes[origin])
        for rev in range(revisions):
            for h in range(1, horizon + 1):
                target = origin + dt.timedelta(days=h)
                fc = base * (1 + 0.01 * rev)
                band = {}
                for name, z in (("80", 1.2816), ("95", 1.96)):
                    w = z * sigma * math.sqrt(h)
                    band[f"lower_{name}"], band[f"upper_{name}"] = fc * math.exp(-w), fc * math.exp(w)
                rows.append({"ticker": "ETH-USD", "origin": origin, "target_date": target,
                             "horizon": h, "forecast": fc, **band, "served": "naive",
                             "model_version": "1", "run_id": "r", "revision": rev,
                             "actual": float(closes[target]) if target in closes.index else np.nan})
    return pd.DataFrame(rows)


def random_walk(days: int, sigma: float | list[float], seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    sig = np.full(days, sigma) if isinstance(sigma, float) else np.asarray(sigma)
    path = 1000 * np.exp(np.cumsum(rng.normal(0, 1, days) * sig))
    return pd.Series(path, index=[D0 + dt.timedelta(days=i) for i in range(days)])


def test_alarm_fires_when_volatility_triples() -> None:
    sigma = [0.02] * 60 + [0.06] * 45
    closes = random_walk(105, sigma, seed=3)
    origins = list(closes.index[:-1])
    export = ledger_frame(closes, origins, 3, sigma=0.02)
    reasons = alarm(export, closes, BANDS, max_skill=1.25)
    assert any("80 % band held" in r for r in reasons), reasons
    held = next(r for r in reasons if "80 % band" in r)
    lo, hi = binomial_range(ALARM_OUTCOMES, 0.8)
    assert f"outside the 99 % range {lo}..{hi}" in held


def test_alarm_stays_quiet_on_a_calm_series() -> None:
    closes = random_walk(105, 0.02, seed=3)
    export = ledger_frame(closes, list(closes.index[:-1]), 3, sigma=0.02)
    assert alarm(export, closes, BANDS, max_skill=1.25) == []


def test_alarm_needs_30_outcomes() -> None:
    sigma = [0.06] * 20
    closes = random_walk(20, sigma, seed=1)
    export = ledger_frame(closes, list(closes.index[:-1]), 1, sigma=0.02)
    assert alarm(export, closes, BANDS, max_skill=1.25) == []  # 19 outcomes: too few to judge


def test_alarm_on_skill_above_the_bound() -> None:
    closes = random_walk(60, 0.02, seed=5)
    export = ledger_frame(closes, list(closes.index[:-1]), 1, sigma=0.02)
    assert not [r for r in alarm(export, closes, BANDS, max_skill=1.25) if "skill" in r]
    export["forecast"] = export["forecast"] * 1.2  # 20 % off persistence: far worse
    skill = [r for r in alarm(export, closes, BANDS, max_skill=1.25) if "skill" in r]
    assert len(skill) == 1 and "above refresh.alarm_max_skill 1.25" in skill[0], skill


def test_pending_and_revisions_are_not_scored() -> None:
    closes = random_walk(12, 0.02, seed=2)
    export = ledger_frame(closes, list(closes.index), 3, sigma=0.02, revisions=2)
    record = track_record(export, closes, BANDS)
    # The last 3 origins' targets run past the closes: 1 + 2 + 3 pending first forecasts.
    assert record["pending"] == 6
    assert record["scored"] == 12 * 3 - 6
    # Revision 1 is 1 % off; had it been scored, the RMSE would not be persistence's (0 skill gap).
    assert record["windows"]["all"]["pooled"]["skill_vs_persistence"] == pytest.approx(1.0)


def independent(export: pd.DataFrame, closes: pd.Series, last: int | None) -> dict[int, dict[str, float]]:
    """RMSE, MAE, skill, coverage and Winkler by horizon, with plain loops over the export."""
    first = [r for r in export.to_dict("records") if r["revision"] == 0
             and not math.isnan(r["actual"]) and r["origin"] in closes.index]
    origins = sorted({r["origin"] for r in first})
    if last is not None:
        origins = origins[-last:]
    out: dict[int, dict[str, float]] = {}
    for h in sorted({r["horizon"] for r in first if r["origin"] in origins}):
        rows = [r for r in first if r["horizon"] == h and r["origin"] in origins]
        err = [r["forecast"] - r["actual"] for r in rows]
        naive = [closes[r["origin"]] - r["actual"] for r in rows]
        rmse = math.sqrt(sum(e * e for e in err) / len(err))
        naive_rmse = math.sqrt(sum(e * e for e in naive) / len(naive))
        stats = {"n": len(rows), "rmse": rmse, "mae": sum(abs(e) for e in err) / len(err),
                 "skill": rmse / naive_rmse if naive_rmse > 0 else float("nan")}
        for name, level in BANDS.items():
            inside = [r[f"lower_{name}"] <= r["actual"] <= r[f"upper_{name}"] for r in rows]
            stats[f"cov_{name}"] = sum(inside) / len(rows)
            alpha = 1 - level
            stats[f"wink_{name}"] = sum(
                (r[f"upper_{name}"] - r[f"lower_{name}"])
                + 2 / alpha * max(r[f"lower_{name}"] - r["actual"], 0)
                + 2 / alpha * max(r["actual"] - r[f"upper_{name}"], 0) for r in rows) / len(rows)
        out[h] = stats
    return out


@settings(max_examples=40, deadline=None)
@given(days=st.integers(4, 45), horizon=st.integers(1, 4), sigma=st.floats(0.005, 0.1),
       seed=st.integers(0, 10_000), revisions=st.integers(1, 2),
       drop=st.lists(st.integers(0, 200), max_size=10))
def test_track_record_equals_an_independent_computation(
        days: int, horizon: int, sigma: float, seed: int, revisions: int, drop: list[int]) -> None:
    closes = random_walk(days, sigma, seed)
    rng = np.random.default_rng(seed)
    export = ledger_frame(closes, list(closes.index), horizon, sigma=sigma * 0.8,
                          revisions=revisions)
    export["forecast"] = export["forecast"] * np.exp(rng.normal(0, sigma, len(export)))
    export = export.drop(index=[i for i in drop if i < len(export)])  # gaps in the record
    record = track_record(export, closes, BANDS)
    for window, last in (("all", None), ("last_30", 30), ("last_90", 90)):
        expected = independent(export, closes, last)
        if not expected:
            assert record["windows"] == {}
            continue
        got = record["windows"][window]["by_horizon"]
        assert sorted(int(h) for h in got) == sorted(expected)
        for h, want in expected.items():
            s = got[str(h)]
            assert s["n"] == want["n"]
            assert s["rmse"] == pytest.approx(want["rmse"], rel=1e-9, abs=1e-9)
            assert s["mae"] == pytest.approx(want["mae"], rel=1e-9, abs=1e-9)
            if math.isnan(want["skill"]):
                assert s["skill_vs_persistence"] is None
            else:
                assert s["skill_vs_persistence"] == pytest.approx(want["skill"], rel=1e-9)
            for name in BANDS:
                band = s["bands"][name]
                assert band["coverage"] == pytest.approx(want[f"cov_{name}"])
                assert band["interval_score"] == pytest.approx(want[f"wink_{name}"], rel=1e-9)
                lo, hi = band["coverage_ci95"]
                assert lo <= band["coverage"] <= hi


def test_wilson_interval_is_the_textbook_one() -> None:
    lo, hi = wilson(25, 30)
    z = 1.959963984540054
    p, n = 25 / 30, 30
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
