"""Every branch of the serving gate, on constructed scores."""

from __future__ import annotations

import pytest

from crypto_forecast.evaluation.gate import GateThresholds, decide

T = GateThresholds(max_skill_h1=1.0, max_skill_mean=0.98, min_gain_vs_champion=0.01)


def test_lstm_served_when_it_beats_persistence_everywhere() -> None:
    d = decide(skill_h1=0.95, skill_mean=0.97, thresholds=T)
    assert d.served == "lstm"
    assert d.reasons == ("1-day skill 0.950 < 1", "mean skill over the horizon 0.970 < 0.98")


@pytest.mark.parametrize(("h1", "mean", "why"), [
    (1.02, 0.90, "1-day skill 1.020 is not below 1"),
    (0.90, 0.98, "mean skill over the horizon 0.980 is not below 0.98"),
    (None, 0.90, "1-day skill is undefined"),
    (0.90, None, "mean skill over the horizon is undefined"),
])
def test_naive_served_when_any_check_fails(h1: float | None, mean: float | None, why: str) -> None:
    d = decide(skill_h1=h1, skill_mean=mean, thresholds=T)
    assert d.served == "naive" and why in d.reasons
    assert d.summary().startswith("serving the naive forecast (persistence): ")


def test_the_champion_must_be_beaten_by_the_margin() -> None:
    kept = decide(skill_h1=0.9, skill_mean=0.95, thresholds=T, champion_skill_mean=0.955)
    assert kept.served == "naive" and "by only 0.005 (needs 0.01)" in kept.reasons[-1]
    beaten = decide(skill_h1=0.9, skill_mean=0.95, thresholds=T, champion_skill_mean=0.97)
    assert beaten.served == "lstm" and beaten.reasons[-1] == "improves on the champion's mean skill by 0.020"


def test_exactly_at_the_threshold_does_not_pass() -> None:
    assert decide(skill_h1=1.0, skill_mean=0.5, thresholds=T).served == "naive"
