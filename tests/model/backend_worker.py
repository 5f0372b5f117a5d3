"""One training in a fresh process, on the backend named on the command line, through the
project's own `fit_network`: what tests/model/test_backends.py compares across processes.

    python tests/model/backend_worker.py BACKEND SEED OUT_DIR

Writes OUT_DIR/model.keras and OUT_DIR/result.npz: the weights, Keras's own predictions and
recursive forecasts on fixed windows, and whether TensorFlow was ever imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from crypto_forecast.evaluation.backtest import feedback_forecast  # noqa: E402
from crypto_forecast.params import parse_params  # noqa: E402
from tests.helpers import keras_predict  # noqa: E402

WINDOW, HORIZON = 8, 4


def data() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A noisy wave cut into windows (70 to train: the last batch of 16 is partial) and 24
    windows to forecast from."""
    rng = np.random.default_rng(0)
    series = (0.5 + 0.3 * np.sin(np.arange(200) / 6) + rng.normal(0, 0.03, 200)).astype(np.float32)
    x = np.lib.stride_tricks.sliding_window_view(series[:-1], WINDOW)[..., np.newaxis]
    y = series[WINDOW:]
    arrays = {"x_train": x[:70], "y_train": y[:70], "x_val": x[70:100], "y_val": y[70:100]}
    return arrays, x[120:144, :, 0]


def main() -> None:
    backend, seed, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    params = parse_params({"preprocess": {"window": WINDOW},
                           "train": {"units": [6, 5], "epochs": 3, "batch_size": 16,
                                     "learning_rate": 0.01, "patience": 3, "seed": seed,
                                     "backend": backend}})
    from crypto_forecast.model.training import fit_network

    arrays, windows = data()
    model, _ = fit_network(params, arrays)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    import keras

    predicted = np.asarray(model.predict(windows[..., np.newaxis], verbose=0)).reshape(-1)
    forecasts = feedback_forecast(keras_predict(model), windows, HORIZON)
    np.savez(out / "result.npz", *[np.asarray(w) for w in model.get_weights()],
             windows=windows, predicted=predicted, forecasts=forecasts,
             backend=np.array(keras.backend.backend()),
             tensorflow_imported=np.array("tensorflow" in sys.modules))


if __name__ == "__main__":
    main()
