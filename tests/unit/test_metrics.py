"""Error metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

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
