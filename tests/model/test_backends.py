"""Both Keras backends (train.backend: jax | tensorflow) through the project's own training:
each deterministic across processes, and whatever trained the model, the NumPy forward pass
that evaluate and forecast use gives Keras's own forecasts. One subprocess per training,
since a process runs Keras on one backend only (~1.5 min: slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crypto_forecast.errors import ConfigError
from crypto_forecast.model.backend import BACKENDS, DEFAULT_BACKEND, active_backend, use_backend
from crypto_forecast.model.numpy_net import load_network, shared_prefix_forecast
from crypto_forecast.params import parse_params

pytestmark = [pytest.mark.slow, pytest.mark.long]  # ~80 s of training; CI runs it (`pytest -m long`)

WORKER = Path(__file__).with_name("backend_worker.py")
SEEDS = (11, 11)  # the same seed twice (a different seed changing them: test_model.py)


def _train(backend: str, seed: int, out: Path, cache: Path) -> dict[str, Any]:
    # JAX's persistent compilation cache in a fresh folder: the first run compiles and
    # fills it, the second loads its steps from it, and must still give the same weights.
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, str(WORKER), backend, str(seed), str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with np.load(out / "result.npz") as npz:
        result = {k: npz[k] for k in npz.files}
    result["weights"] = [result.pop(f"arr_{i}") for i in range(sum(k.startswith("arr_") for k in result))]
    result["path"] = out / "model.keras"
    result["stderr"] = done.stderr
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    base = tmp_path_factory.mktemp("backends")
    return {b: [_train(b, s, base / f"{b}-{i}", base / "jax-cache") for i, s in enumerate(SEEDS)]
            for b in BACKENDS}


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_gives_identical_weights_across_processes(
        trained: dict[str, list[dict[str, Any]]], backend: str) -> None:
    first, again = trained[backend]
    assert str(first["backend"]) == str(again["backend"]) == backend
    for a, b in zip(first["weights"], again["weights"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_backends_draw_different_weights_for_one_seed(
        trained: dict[str, list[dict[str, Any]]]) -> None:
    """Expected (README): each backend has its own random number generator."""
    jax_w, tf_w = trained["jax"][0]["weights"], trained["tensorflow"][0]["weights"]
    assert [w.shape for w in jax_w] == [w.shape for w in tf_w]
    assert any(not np.array_equal(a, b) for a, b in zip(jax_w, tf_w, strict=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_path_forecasts_what_keras_forecasts(
        trained: dict[str, list[dict[str, Any]]], backend: str) -> None:
    run = trained[backend][0]
    net = load_network(run["path"])  # the archive's layer and weight names, as written
    assert net.param_count == sum(w.size for w in run["weights"])
    windows = run["windows"]
    np.testing.assert_allclose(net.predict(windows), run["predicted"], rtol=1e-5, atol=1e-6)
    # The recursion as evaluate and forecast run it: every window in the series is an origin.
    window = windows.shape[1]
    values = np.concatenate([windows[0], windows[1:, -1]]).astype(np.float64)
    origins = np.arange(window - 1, values.size)
    got = shared_prefix_forecast(net, values, origins, window, run["forecasts"].shape[1])
    np.testing.assert_allclose(got, run["forecasts"], rtol=1e-5, atol=1e-6)


def test_jax_training_never_imports_tensorflow(trained: dict[str, list[dict[str, Any]]]) -> None:
    for run in trained["jax"]:
        assert not bool(run["tensorflow_imported"])
        # JAX's start-up probe and its compilation cache stay out of the logs.
        assert "tpu" not in run["stderr"].lower() and "cache" not in run["stderr"].lower()
    cache = run["path"].parents[1] / "jax-cache"
    assert any(cache.iterdir())  # the second run had compiled steps to load


def test_backend_param_is_validated() -> None:
    assert parse_params({}).train.backend == DEFAULT_BACKEND == "jax"
    assert parse_params({"train": {"backend": "tensorflow"}}).train.backend == "tensorflow"
    with pytest.raises(ConfigError, match=r"train\.backend: .*'jax' or 'tensorflow'.*'torch'"):
        parse_params({"train": {"backend": "torch"}})


def test_switching_backend_after_keras_is_imported_is_refused() -> None:
    import keras

    current = keras.backend.backend()
    assert active_backend() == current
    use_backend(current)  # the one already running: fine
    other = next(b for b in BACKENDS if b != current)
    with pytest.raises(ConfigError, match=f"train.backend is '{other}' but Keras is already "
                                          f"imported in this process with the '{current}'"):
        use_backend(other)
