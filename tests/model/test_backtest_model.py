"""The backtest with a real (small, untrained) Keras network: the direct call agrees with
`predict`, and an origin's forecasts ignore every later price."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crypto_forecast.data.series import split_and_scale
from crypto_forecast.evaluation.backtest import model_forecasts, split_origins
from crypto_forecast.model.backend import configure
from crypto_forecast.model.keras_net import build_model
from tests.helpers import keras_predict


def test_direct_call_matches_predict_and_never_looks_ahead() -> None:
    configure(5)
    model = build_model(window=8, units=(6, 6), learning_rate=1e-3)
    predict = keras_predict(model)
    x = np.random.default_rng(0).random((40, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(predict(x), model.predict(x, verbose=0).reshape(-1), rtol=1e-5,
                               atol=1e-6)

    rng = np.random.default_rng(1)
    close = pd.Series(500 * np.exp(np.cumsum(rng.normal(0, 0.03, 150))),
                      index=pd.date_range("2021-01-01", periods=150, freq="D"))
    frame, scaler, _ = split_and_scale(close, 8, 0.15, 0.2, "price")
    origins, _ = split_origins(frame["split"].to_numpy(), "test")
    before = model_forecasts(predict, frame["scaled"].to_numpy(), frame["close"].to_numpy(),
                             origins, 8, 5, scaler, "price")
    k = len(origins) // 2
    bad = close.copy()
    bad.iloc[int(origins[k]) + 1:] *= 3.0
    frame2, scaler2, _ = split_and_scale(bad, 8, 0.15, 0.2, "price")
    after = model_forecasts(predict, frame2["scaled"].to_numpy(), frame2["close"].to_numpy(),
                            origins, 8, 5, scaler2, "price")
    np.testing.assert_array_equal(after[: k + 1], before[: k + 1])
    assert not np.allclose(after[k + 1:], before[k + 1:])
