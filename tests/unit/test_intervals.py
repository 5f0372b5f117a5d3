"""Split-conformal bands: the quantile rule, and calibration on synthetic Gaussian noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crypto_forecast.errors import DataError
from crypto_forecast.evaluation.intervals import (
    band,
    conformal_quantile,
    coverage,
    level_name,
    log_ratio_scores,
)


def test_conformal_quantile_is_the_ceil_n_plus_1_level_th_smallest() -> None:
    scores = np.array([5.0, 1.0, 4.0, 2.0, 3.0, np.nan])  # NaN (beyond the split) ignored
    assert conformal_quantile(scores, 0.5) == 3.0  # ceil(6 * 0.5) = 3rd smallest
    assert conformal_quantile(scores, 0.8) == 5.0  # ceil(6 * 0.8) = 5th


def test_too_few_calibration_points_say_what_to_change() -> None:
    with pytest.raises(DataError, match=r"raise preprocess\.val_fraction"):
        conformal_quantile(np.arange(10.0), 0.95)


def test_band_and_coverage_in_log_ratio_terms() -> None:
    lower, upper = band(np.array([100.0, 200.0]), math.log(1.1))
    np.testing.assert_allclose(lower, [100 / 1.1, 200 / 1.1])
    np.testing.assert_allclose(upper, [110.0, 220.0])
    assert coverage([105.0, 250.0, np.nan], [90.0, 180.0, 0.0], [110.0, 220.0, 1.0]) == 0.5
    np.testing.assert_allclose(log_ratio_scores([110.0, 100.0], [100.0, 110.0]),
                               [math.log(1.1)] * 2)
    assert log_ratio_scores([100.0], [-1.0])[0] == math.inf  # a negative forecast never covers
    assert level_name(0.8) == "80" and level_name(0.95) == "95"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_80_percent_band_covers_80_percent_of_gaussian_noise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    forecast_cal = 100 + rng.normal(0, 5, 500)
    actual_cal = forecast_cal * np.exp(rng.normal(0, 0.03, 500))
    forecast_new = 100 + rng.normal(0, 5, 2000)
    actual_new = forecast_new * np.exp(rng.normal(0, 0.03, 2000))
    for level in (0.8, 0.95):
        q = conformal_quantile(log_ratio_scores(actual_cal, forecast_cal), level)
        lower, upper = band(forecast_new, q)
        assert coverage(actual_new, lower, upper) == pytest.approx(level, abs=0.05)
    # and on additive Gaussian noise around a level far from zero, too
    actual_cal, actual_new = 1000 + rng.normal(0, 20, 500), 1000 + rng.normal(0, 20, 2000)
    q = conformal_quantile(log_ratio_scores(actual_cal, np.full(500, 1000.0)), 0.8)
    lower, upper = band(np.full(2000, 1000.0), q)
    assert coverage(actual_new, lower, upper) == pytest.approx(0.8, abs=0.05)


def test_recent_volatility_uses_the_returns_up_to_the_origin() -> None:
    from crypto_forecast.evaluation.intervals import recent_volatility

    close = np.exp(np.array([0.0, 0.1, 0.0, 0.2, 0.2, 5.0]))  # log returns .1 -.1 .2 0 4.8
    sigma = recent_volatility(close, np.array([3, 4]), days=3)
    np.testing.assert_allclose(sigma, [np.std([0.1, -0.1, 0.2], ddof=1), np.std([-0.1, 0.2, 0.0], ddof=1)])
    with pytest.raises(DataError, match=r"lower evaluate\.volatility_days"):
        recent_volatility(close, np.array([2]), days=3)


def test_volatility_scaled_bands_stay_calibrated_when_volatility_changes() -> None:
    from crypto_forecast.evaluation.intervals import recent_volatility

    rng = np.random.default_rng(7)
    # calm calibration period, turbulent test period: fixed bands under-cover, scaled ones hold
    vol = np.r_[np.full(1030, 0.01), np.full(1030, 0.03)]
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol)))
    cal, new = np.arange(30, 1029), np.arange(1060, 2059)
    forecast = close  # persistence from each origin, 1 day ahead
    s_cal = log_ratio_scores(close[cal + 1], forecast[cal])
    s_new = log_ratio_scores(close[new + 1], forecast[new])
    fixed = conformal_quantile(s_cal, 0.8)
    assert np.mean(s_new <= fixed) < 0.5
    u_cal, u_new = recent_volatility(close, cal, 30), recent_volatility(close, new, 30)
    q = conformal_quantile(s_cal / u_cal, 0.8)
    assert np.mean(s_new <= q * u_new) == pytest.approx(0.8, abs=0.05)
