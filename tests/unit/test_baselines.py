"""The baselines, against hand-computed forecasts."""

from __future__ import annotations

import numpy as np
import pytest

from crypto_forecast.evaluation.baselines import drift, moving_average, persistence, train_drift

CLOSE = np.array([10.0, 12.0, 11.0, 15.0, 14.0, 18.0])


def test_persistence_repeats_the_origin_close() -> None:
    np.testing.assert_array_equal(persistence(CLOSE, np.array([2, 4]), 3),
                                  [[11, 11, 11], [14, 14, 14]])


def test_drift_adds_the_training_mean_daily_change() -> None:
    slope = train_drift(CLOSE[:4])  # (15 - 10) / 3
    assert slope == pytest.approx(5 / 3)
    np.testing.assert_allclose(drift(CLOSE, np.array([3]), 2, slope), [[15 + 5 / 3, 15 + 10 / 3]])


def test_moving_average_is_flat_mean_of_last_k_closes() -> None:
    np.testing.assert_allclose(moving_average(CLOSE, np.array([2, 5]), 2, k=3),
                               [[11, 11], [(15 + 14 + 18) / 3] * 2])
    np.testing.assert_allclose(moving_average(CLOSE, np.array([0]), 1, k=1), [[10.0]])


def test_moving_average_refuses_too_little_history() -> None:
    with pytest.raises(ValueError, match="needs 3 closes"):
        moving_average(CLOSE, np.array([1]), 2, k=3)


def test_baselines_use_nothing_after_the_origin() -> None:
    corrupted = CLOSE.copy()
    corrupted[4:] = 1e6
    origins = np.array([1, 2, 3])
    for fn in (lambda c: persistence(c, origins, 3), lambda c: drift(c, origins, 3, 0.5),
               lambda c: moving_average(c, origins, 3, 2)):
        np.testing.assert_array_equal(fn(CLOSE), fn(corrupted))
