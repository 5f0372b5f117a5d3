"""Every branch of the serving gate, on constructed scores; and, through
`scoring.serving_decision`, that its skill is measured against the better baseline."""

from __future__ import annotations

import numpy as np
import pytest

from crypto_forecast.evaluation.gate import Champion, GateThresholds, decide
from crypto_forecast.evaluation.scoring import serving_decision, skill_vs_best_baseline
from crypto_forecast.io.contracts import HorizonScores, PredictorScores

T = GateThresholds(max_skill_h1=1.0, max_skill_mean=0.98, min_gain_vs_champion=0.01)
NO_CHAMPION = "no champion LSTM to compare with"


def test_lstm_served_when_it_beats_the_baselines_everywhere_and_there_is_no_champion() -> None:
    d = decide(skill_h1=0.95, skill_mean=0.97, thresholds=T)
    assert d.served == "lstm"
    assert d.reasons == ("1-day skill 0.950 < 1", "mean skill over the horizon 0.970 < 0.98",
                         NO_CHAMPION)
    assert d.summary() == "serving the LSTM's forecast: " + "; ".join(d.reasons)
    assert decide(skill_h1=0.95, skill_mean=0.97, thresholds=T, champion=None) == d


@pytest.mark.parametrize(("h1", "mean", "why"), [
    (1.02, 0.90, ["1-day skill 1.020 is not below 1"]),
    (0.90, 0.98, ["mean skill over the horizon 0.980 is not below 0.98"]),
    (1.20, 0.99, ["1-day skill 1.200 is not below 1",
                  "mean skill over the horizon 0.990 is not below 0.98"]),
    (None, 0.90, ["1-day skill is undefined"]),
    (0.90, None, ["mean skill over the horizon is undefined"]),
    (None, None, ["1-day skill is undefined", "mean skill over the horizon is undefined"]),
])
def test_naive_served_when_any_check_fails(h1: float | None, mean: float | None,
                                           why: list[str]) -> None:
    d = decide(skill_h1=h1, skill_mean=mean, thresholds=T)
    assert d.served == "naive"
    failed = [r for r in d.reasons if "not below" in r or "undefined" in r]
    assert failed == why  # exactly the failing checks, each named
    assert d.reasons[-1] == NO_CHAMPION
    assert d.summary().startswith("serving the naive forecast (persistence): ")


def test_exactly_at_the_threshold_does_not_pass() -> None:
    assert decide(skill_h1=1.0, skill_mean=0.5, thresholds=T).served == "naive"
    assert decide(skill_h1=0.5, skill_mean=0.98, thresholds=T).served == "naive"


def test_the_champion_must_be_beaten_by_the_margin() -> None:
    exact = GateThresholds(min_gain_vs_champion=0.125)  # binary fractions: exact arithmetic
    at_margin = decide(skill_h1=0.5, skill_mean=0.75, thresholds=exact,
                       champion=Champion("version 3 (run 0a1b2c3d)", 0.875))
    assert at_margin.served == "lstm"  # a gain of exactly the margin is enough
    assert at_margin.reasons[-1] == ("mean skill 0.750 vs the champion's 0.875 (version 3 "
                                     "(run 0a1b2c3d)): gain +0.125 ≥ 0.125")
    short = decide(skill_h1=0.5, skill_mean=0.75, thresholds=exact,
                   champion=Champion("version 3 (run 0a1b2c3d)", 0.8125))
    assert short.served == "naive"
    assert short.reasons[-1] == ("mean skill 0.750 vs the champion's 0.812 (version 3 "
                                 "(run 0a1b2c3d)): gain +0.062 is below 0.125")
    # the skill checks passed: only the champion comparison failed
    assert short.reasons[:2] == ("1-day skill 0.500 < 1", "mean skill over the horizon 0.750 < 1")

    beaten = decide(skill_h1=0.9, skill_mean=0.95, thresholds=T,
                    champion=Champion("version 2", 0.97))
    assert beaten.served == "lstm" and "gain +0.020 ≥ 0.01" in beaten.reasons[-1]
    kept = decide(skill_h1=0.9, skill_mean=0.95, thresholds=T,
                  champion=Champion("version 2", 0.955))
    assert kept.served == "naive" and "gain +0.005 is below 0.01" in kept.reasons[-1]
    worse = decide(skill_h1=0.9, skill_mean=0.95, thresholds=T,
                   champion=Champion("version 2", 0.9))
    assert worse.served == "naive" and "gain -0.050 is below 0.01" in worse.reasons[-1]


def test_a_champion_that_fails_the_skill_checks_cannot_rescue_the_lstm() -> None:
    d = decide(skill_h1=1.1, skill_mean=0.95, thresholds=T, champion=Champion("version 2", 2.0))
    assert d.served == "naive" and "gain +1.050 ≥ 0.01" in d.reasons[-1]


def test_a_negative_margin_tolerates_a_small_regression() -> None:
    lenient = GateThresholds(min_gain_vs_champion=-0.0625)
    slight = decide(skill_h1=0.5, skill_mean=0.875, thresholds=lenient,
                    champion=Champion("version 5", 0.8125))  # gain -0.0625: just allowed
    assert slight.served == "lstm" and "gain -0.062 ≥ -0.0625" in slight.reasons[-1]
    large = decide(skill_h1=0.5, skill_mean=0.875, thresholds=lenient,
                   champion=Champion("version 5", 0.75))  # gain -0.125
    assert large.served == "naive" and "gain -0.125 is below -0.0625" in large.reasons[-1]


def test_a_champion_without_a_comparable_score_is_not_compared() -> None:
    label = "version 4 (run ffee0011)"
    no_score = decide(skill_h1=0.9, skill_mean=0.95, thresholds=T, champion=Champion(label, None))
    assert no_score.served == "lstm"  # not compared: it neither blocks nor passes anything
    assert no_score.reasons[-1] == (f"the champion ({label}) has no mean skill on these "
                                    "origins; not compared")
    # our own mean skill undefined: not compared either, and the LSTM fails on that already
    ours_undefined = decide(skill_h1=0.9, skill_mean=None, thresholds=T,
                            champion=Champion(label, 0.9))
    assert ours_undefined.served == "naive"
    assert "mean skill over the horizon is undefined" in ours_undefined.reasons
    assert ours_undefined.reasons[-1].endswith("not compared")


# --- through scoring.serving_decision: skill against the better of persistence and drift ----

def _scores(rmse: float | None) -> PredictorScores:
    return PredictorScores(rmse=rmse, mae=None, mape=None, smape=None, mase=None, direction=None)


def _step(h: int, *, lstm: float | None, persistence: float | None,
          drift: float | None) -> HorizonScores:
    skill = lstm / persistence if lstm is not None and persistence else None
    return HorizonScores(horizon=h, lstm=_scores(lstm), persistence=_scores(persistence),
                         drift=_scores(drift), moving_average=_scores(1.0), skill_rmse=skill)


NAIVE_WIDTHS = {0.8: np.array([0.25, 0.5]), 0.95: np.array([0.5, 0.75])}


def test_skill_is_measured_against_the_better_baseline() -> None:
    # h1: drift (8) beats persistence (10); the LSTM's 9 beats persistence, not drift.
    # h2: persistence (16) beats drift (20); the LSTM's 12 beats both.
    steps = [_step(1, lstm=9.0, persistence=10.0, drift=8.0),
             _step(2, lstm=12.0, persistence=16.0, drift=20.0)]
    assert steps[0].skill_rmse == pytest.approx(0.9)  # the report's skill: vs persistence
    assert skill_vs_best_baseline(steps[0]) == (pytest.approx(9 / 8), "drift")
    assert skill_vs_best_baseline(steps[1]) == (pytest.approx(12 / 16), "persistence")
    d = serving_decision(steps=steps, gate=GateThresholds(), champion=None,
                         naive_widths=NAIVE_WIDTHS)
    assert d.skill_h1 == pytest.approx(1.125) and d.best_baseline_h1 == "drift"
    assert d.skill_mean == pytest.approx((1.125 + 0.75) / 2)
    assert d.served == "naive"  # it would pass against persistence alone
    assert "1-day skill 1.125 is not below 1" in d.reasons
    assert d.max_skill_h1 == 1.0 and d.max_skill_mean == 1.0 and d.min_gain_vs_champion == 0.0
    assert d.champion is None and d.champion_skill_mean is None
    assert d.naive_quantiles == {"80": [0.25, 0.5], "95": [0.5, 0.75]}


def test_serving_decision_records_the_champion_it_compared_with() -> None:
    steps = [_step(1, lstm=6.0, persistence=10.0, drift=8.0),
             _step(2, lstm=12.0, persistence=16.0, drift=20.0)]
    champion = Champion("version 7 (run 12345678)", 0.5)
    d = serving_decision(steps=steps, gate=GateThresholds(), champion=champion,
                         naive_widths=NAIVE_WIDTHS)
    assert d.skill_h1 == pytest.approx(0.75) and d.skill_mean == pytest.approx(0.75)
    assert d.served == "naive" and "gain -0.250 is below 0" in d.reasons[-1]
    assert d.champion == champion.label and d.champion_skill_mean == 0.5
    easy = serving_decision(steps=steps, gate=GateThresholds(), champion=Champion("v1", 0.8),
                            naive_widths=NAIVE_WIDTHS)
    assert easy.served == "lstm"


def test_a_missing_baseline_falls_back_and_no_baseline_is_undefined() -> None:
    no_drift = _step(1, lstm=9.0, persistence=10.0, drift=None)
    assert skill_vs_best_baseline(no_drift) == (pytest.approx(0.9), "persistence")
    flat = _step(1, lstm=0.0, persistence=0.0, drift=None)  # constant prices: 0 / 0
    assert skill_vs_best_baseline(flat) == (None, "persistence")
    nothing = _step(1, lstm=None, persistence=None, drift=None)
    assert skill_vs_best_baseline(nothing) == (None, "none")
    # one undefined horizon leaves the mean undefined: never served
    d = serving_decision(steps=[_step(1, lstm=5.0, persistence=10.0, drift=10.0), flat],
                         gate=GateThresholds(), champion=None, naive_widths={})
    assert d.skill_h1 == pytest.approx(0.5) and d.skill_mean is None and d.served == "naive"
    assert "mean skill over the horizon is undefined" in d.reasons
