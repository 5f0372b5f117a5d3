"""Windows, the chronological split and the train-only scaler."""

from __future__ import annotations

import numpy as np
import pytest

from crypto_forecast.data.series import MinMaxScaler, Split, make_windows
from crypto_forecast.errors import DataError


def test_make_windows_inputs_precede_their_target() -> None:
    series = np.arange(20, dtype=np.float64)
    x, y = make_windows(series, range(5, 9), window=5)
    assert x.shape == (4, 5, 1) and y.shape == (4,)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(y, [5, 6, 7, 8])
    np.testing.assert_array_equal(x[3, :, 0], [3, 4, 5, 6, 7])


def test_make_windows_needs_full_history() -> None:
    with pytest.raises(ValueError, match="full window"):
        make_windows(np.arange(10.0), range(2, 5), window=3)


def test_split_is_chronological_with_last_20_percent_test() -> None:
    split = Split.chronological(1000, window=60, val_fraction=0.1, test_fraction=0.2)
    assert (split.train_end, split.val_end) == (700, 800)
    assert split.target_range("train") == range(60, 700)
    assert split.target_range("val") == range(700, 800)
    assert split.target_range("test") == range(800, 1000)
    labels = split.labels()
    assert labels[699] == "train" and labels[700] == "val" and labels[800] == "test"


def test_split_too_short_says_what_to_change() -> None:
    with pytest.raises(DataError, match=r"widen the date range or shrink preprocess\.window"):
        Split.chronological(80, window=60, val_fraction=0.1, test_fraction=0.2)


def test_scaler_fitted_on_train_only_does_not_see_test_range() -> None:
    values = np.array([10.0, 20.0, 30.0, 100.0])
    scaler = MinMaxScaler.fit(values[:3])
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled, [0.0, 0.5, 1.0, 4.5])  # test value left unclipped
    np.testing.assert_allclose(scaler.inverse(scaled), values)
    assert MinMaxScaler.from_json(scaler.to_json()) == scaler


def test_constant_training_prices_are_refused() -> None:
    with pytest.raises(DataError, match="constant"):
        MinMaxScaler.fit(np.full(5, 3.0))
