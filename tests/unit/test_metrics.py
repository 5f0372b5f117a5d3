"""Error metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from stages.metrics import mae, mape, rmse, summary


def test_hand_computed() -> None:
    actual, predicted = [100.0, 200.0, 400.0], [110.0, 190.0, 400.0]
    assert rmse(actual, predicted) == pytest.approx(math.sqrt(200 / 3))
    assert mae(actual, predicted) == pytest.approx(20 / 3)
    assert mape(actual, predicted) == pytest.approx((10 + 5 + 0) / 3)
    assert summary(actual, predicted)["rmse"] == rmse(actual, predicted)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="equal"):
        rmse([1.0, 2.0], [1.0])
