"""The NumPy forward pass (stages.network) against Keras itself, on real saved `.keras`
archives: same outputs, same recursive forecasts, no look-ahead, clear refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crypto_forecast.errors import ArtifactError
from crypto_forecast.evaluation.backtest import feedback_forecast
from crypto_forecast.model.backend import configure
from crypto_forecast.model.keras_net import build_model
from crypto_forecast.model.numpy_net import load_network, shared_prefix_forecast
from tests.helpers import keras_predict

ROOT = Path(__file__).resolve().parents[2]


def _saved(tmp_path: Path, window: int, units: tuple[int, ...], seed: int = 3) -> tuple[Any, Path]:
    """A Keras network with lively random weights (gates far from 0.5), saved as .keras."""
    configure(seed)
    model = build_model(window=window, units=units, learning_rate=1e-3)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])
    path = tmp_path / "model.keras"
    model.save(path)
    return model, path


@pytest.mark.parametrize("units", [(50, 50), (6,), (5, 4, 3)], ids=["lecture", "one", "three"])
def test_forward_pass_matches_keras(tmp_path: Path, units: tuple[int, ...]) -> None:
    model, path = _saved(tmp_path, 12, units)
    net = load_network(path)
    assert net.param_count == model.count_params()
    x = np.random.default_rng(0).random((64, 12, 1), dtype=np.float32) * 2 - 0.5
    expected = model.predict(x, verbose=0).reshape(-1)
    np.testing.assert_allclose(net.predict(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("window", "horizon"), [(8, 5), (3, 6), (6, 1)],
                         ids=["horizon-below-window", "horizon-beyond-window", "one-step"])
def test_shared_recursion_equals_full_passes(tmp_path: Path, window: int, horizon: int) -> None:
    """Same numbers as feeding each prediction back through a full Keras forward pass."""
    model, path = _saved(tmp_path, window, (7, 5))
    net = load_network(path)
    values = np.random.default_rng(1).random(90)
    origins = np.array([window - 1, 20, 21, 22, 40, 41, 60, 89])  # gaps, and the last day
    windows = np.stack([values[o - window + 1: o + 1] for o in origins]).astype(np.float32)
    expected = feedback_forecast(keras_predict(model), windows, horizon)
    got = shared_prefix_forecast(net, values, origins, window, horizon)
    assert got.shape == (origins.size, horizon)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_shared_recursion_never_looks_ahead(tmp_path: Path) -> None:
    _, path = _saved(tmp_path, 10, (8, 8))
    net = load_network(path)
    values = np.random.default_rng(2).random(120)
    origins = np.arange(30, 100)
    before = shared_prefix_forecast(net, values, origins, 10, 7)
    k = 35
    later = values.copy()
    later[origins[k] + 1:] = 50.0  # every value after origin k changes
    after = shared_prefix_forecast(net, later, origins, 10, 7)
    np.testing.assert_array_equal(after[: k + 1], before[: k + 1])
    assert not np.allclose(after[k + 1:], before[k + 1:])


def test_broken_archive_is_a_clear_error(tmp_path: Path) -> None:
    _, path = _saved(tmp_path, 6, (4,))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"is not a readable Keras model.*dvc checkout models"):
        load_network(path)
    with pytest.raises(ArtifactError, match="is missing — run `dvc repro train`"):
        load_network(tmp_path / "absent.keras")


def test_other_architectures_are_refused_not_guessed(tmp_path: Path) -> None:
    import keras

    path = tmp_path / "model.keras"
    keras.Sequential([keras.Input((6, 1)), keras.layers.GRU(4), keras.layers.Dense(1)]).save(path)
    with pytest.raises(ArtifactError, match=r"not the stacked-LSTM network .*GRU, Dense"):
        load_network(path)
    keras.Sequential([keras.Input((6, 1)), keras.layers.LSTM(4, activation="relu"),
                      keras.layers.Dense(1)]).save(path)
    with pytest.raises(ArtifactError, match=r"LSTM layer .* set up differently"):
        load_network(path)


def test_evaluate_and_forecast_never_import_tensorflow(tmp_path: Path) -> None:
    """The point of the NumPy path: the forward-only stages skip TensorFlow's start-up."""
    _, path = _saved(tmp_path, 6, (4, 4))
    code = (
        "import sys, numpy as np\n"
        "import stages.evaluate, stages.forecast\n"
        "from crypto_forecast.model.numpy_net import load_network, shared_prefix_forecast\n"
        f"net = load_network(__import__('pathlib').Path({str(path)!r}))\n"
        "shared_prefix_forecast(net, np.linspace(0, 1, 40), np.arange(10, 40), 6, 3)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
