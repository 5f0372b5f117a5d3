"""Error metrics against hand-computed values, scikit-learn, and (the band metrics)
Hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_forecast.evaluation.metrics import mae, mape, rmse, summary


def test_hand_computed() -> None:
    actual, predicted = [100.0, 200.0, 400.0], [110.0, 190.0, 400.0]
    assert rmse(actual, predicted) == pytest.approx(math.sqrt(200 / 3))
    assert mae(actual, predicted) == pytest.approx(20 / 3)
    assert mape(actual, predicted) == pytest.approx((10 + 5 + 0) / 3)
    assert summary(actual, predicted)["rmse"] == rmse(actual, predicted)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="equal"):
        rmse([1.0, 2.0], [1.0])


def test_smape_mase_direction_hand_computed() -> None:
    from crypto_forecast.evaluation.metrics import directional_accuracy, mase, naive_scale, smape

    actual, predicted = [100.0, 200.0, 400.0], [110.0, 190.0, 400.0]
    # 2·10/210, 2·10/390, 0
    assert smape(actual, predicted) == pytest.approx((20 / 210 + 20 / 390 + 0) / 3 * 100)
    # training closes 10, 12, 9, 9: mean |diff| = (2 + 3 + 0) / 3
    scale = naive_scale([10.0, 12.0, 9.0, 9.0])
    assert scale == pytest.approx(5 / 3)
    assert mase(actual, predicted, scale) == pytest.approx((20 / 3) / (5 / 3))
    # from 100: up/up right, down/up wrong, flat forecast never right
    assert directional_accuracy([110.0, 90.0, 120.0], [105.0, 101.0, 100.0], 100.0) == pytest.approx(1 / 3)
    assert math.isnan(directional_accuracy([110.0, 90.0], [100.0, 100.0], 100.0))


def test_smape_of_two_zeros_is_zero_and_scale_needs_movement() -> None:
    from crypto_forecast.evaluation.metrics import naive_scale, smape

    assert smape([0.0, 1.0], [0.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match="never change"):
        naive_scale([5.0, 5.0, 5.0])


def test_score_skips_targets_beyond_the_split() -> None:
    from crypto_forecast.evaluation.metrics import SCORE_KEYS, score

    actual = [[101.0, math.nan], [99.0, 98.0]]
    predicted = [[102.0, 500.0], [100.5, 97.0]]
    out = score(actual, predicted, [[100.0, 100.0], [100.0, 100.0]], scale=2.0)
    assert tuple(out) == SCORE_KEYS
    assert out["mae"] == pytest.approx((1 + 1.5 + 1) / 3)  # the NaN pair (and its 500) is ignored
    assert out["rmse"] == pytest.approx(math.sqrt((1 + 2.25 + 1) / 3))
    assert out["mase"] == pytest.approx((3.5 / 3) / 2)
    assert out["direction"] == pytest.approx(2 / 3)  # up/up, up/down, down/down


def test_sklearn_agrees_with_the_textbook_formulas() -> None:
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
    )

    rng = np.random.default_rng(4)
    a, p = rng.uniform(50, 150, 300), rng.uniform(50, 150, 300)
    assert rmse(a, p) == pytest.approx(math.sqrt(mean_squared_error(a, p)), rel=1e-12)
    assert mae(a, p) == pytest.approx(mean_absolute_error(a, p), rel=1e-12)
    assert mape(a, p) == pytest.approx(mean_absolute_percentage_error(a, p) * 100, rel=1e-12)
    actual, predicted = [3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0]
    assert rmse(actual, predicted) == pytest.approx(math.sqrt((0.25 + 0.25 + 0 + 1) / 4))
    assert mae(actual, predicted) == pytest.approx(0.5)


# --- band metrics: pinball loss and the interval (Winkler) score ---------------------------

PROPERTY = settings(max_examples=200, deadline=None, database=None)
values = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)
taus = st.floats(0.01, 0.99)
levels = st.floats(0.5, 0.98)


def test_pinball_loss_hand_computed() -> None:
    from crypto_forecast.evaluation.metrics import pinball_loss

    actual, quantile = [10.0, 20.0, 30.0], [12.0, 20.0, 25.0]
    # tau 0.9: over-forecast by 2 costs 0.1·2, exact costs 0, under-forecast by 5 costs 0.9·5
    assert pinball_loss(actual, quantile, 0.9) == pytest.approx((0.2 + 0 + 4.5) / 3)
    # tau 0.1: the other way round
    assert pinball_loss(actual, quantile, 0.1) == pytest.approx((1.8 + 0 + 0.5) / 3)
    # tau 0.5: half the MAE
    assert pinball_loss(actual, quantile, 0.5) == pytest.approx(mae(actual, quantile) / 2)
    for tau in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="tau"):
            pinball_loss(actual, quantile, tau)
    with pytest.raises(ValueError, match="equal"):
        pinball_loss(actual, quantile[:2], 0.5)


def test_interval_score_hand_computed() -> None:
    from crypto_forecast.evaluation.metrics import interval_score

    actual = [10.0, 20.0, 30.0]
    lower, upper = [8.0, 21.0, 22.0], [12.0, 25.0, 28.0]
    # level 0.8: alpha 0.2, a miss costs 2 / 0.2 = 10 per unit outside the band.
    # widths 4, 4, 6; the second outcome is 1 below its band, the third 2 above its band.
    assert interval_score(actual, lower, upper, 0.8) == pytest.approx((4 + (4 + 10) + (6 + 20)) / 3)
    # level 0.95: a miss costs 40 per unit
    assert interval_score(actual, lower, upper, 0.95) == pytest.approx((4 + 44 + 86) / 3)
    assert interval_score([10.0], [10.0], [10.0], 0.8) == 0.0  # a point band that hits
    for level in (0.0, 1.0, 1.2):
        with pytest.raises(ValueError, match="level"):
            interval_score(actual, lower, upper, level)
    with pytest.raises(ValueError, match="equal"):
        interval_score(actual, lower[:2], upper, 0.8)


@PROPERTY
@given(st.lists(st.tuples(values, values), min_size=1, max_size=30), taus)
def test_pinball_loss_is_non_negative_and_zero_only_when_exact(
        pairs: list[tuple[float, float]], tau: float) -> None:
    from crypto_forecast.evaluation.metrics import pinball_loss

    actual, quantile = np.array(pairs).T
    loss = pinball_loss(actual, quantile, tau)
    assert loss >= 0
    assert (loss == 0) == bool(np.all(actual == quantile))
    assert pinball_loss(actual, actual, tau) == 0


@st.composite
def bands(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actual, lower, upper) with lower ≤ upper, outcomes anywhere."""
    rows = draw(st.lists(st.tuples(values, values, values), min_size=1, max_size=30))
    a, x, y = np.array(rows).T
    return a, np.minimum(x, y), np.maximum(x, y)


@PROPERTY
@given(bands(), levels)
def test_interval_score_is_at_least_the_width(band: tuple[np.ndarray, ...], level: float) -> None:
    from crypto_forecast.evaluation.metrics import interval_score

    actual, lower, upper = band
    width = float(np.mean(upper - lower))
    score = interval_score(actual, lower, upper, level)
    assert score >= width * (1 - 1e-12)
    inside = np.clip(actual, lower, upper)  # the same bands, every outcome inside
    assert interval_score(inside, lower, upper, level) == width
    # each miss costs 2 / alpha per unit outside the band, on top of the width
    miss = float(np.mean(np.maximum(lower - actual, 0) + np.maximum(actual - upper, 0)))
    assert score == pytest.approx(width + 2.0 / (1.0 - level) * miss, rel=1e-9, abs=1e-6)


@PROPERTY
@given(bands(), levels)
def test_interval_score_is_two_pinball_losses_over_alpha(band: tuple[np.ndarray, ...],
                                                         level: float) -> None:
    """Gneiting & Raftery (2007): IS_alpha(l, u; y) = (2 / alpha) · (pinball_{alpha/2}(y, l)
    + pinball_{1 - alpha/2}(y, u)), the identity that lets evaluate report both."""
    from crypto_forecast.evaluation.metrics import interval_score, pinball_loss

    actual, lower, upper = band
    alpha = 1.0 - level
    via_pinball = (2.0 / alpha) * (pinball_loss(actual, lower, alpha / 2)
                                   + pinball_loss(actual, upper, 1.0 - alpha / 2))
    assert interval_score(actual, lower, upper, level) == pytest.approx(via_pinball, rel=1e-9,
                                                                        abs=1e-6)
