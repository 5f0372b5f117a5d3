"""The network: the lecture's parameter count, determinism, and safe save/load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crypto_forecast.errors import ArtifactError
from crypto_forecast.model.backend import configure
from crypto_forecast.model.keras_net import LECTURE_PARAM_COUNT, build_model
from crypto_forecast.model.numpy_net import load_network
from tests.helpers import ROOT, load_keras_model


def test_lecture_network_has_30651_parameters() -> None:
    model = build_model(window=60, units=(50, 50), learning_rate=1e-3)
    assert model.count_params() == LECTURE_PARAM_COUNT == 30_651
    assert [layer.__class__.__name__ for layer in model.layers] == ["LSTM", "LSTM", "Dense"]
    assert model.output_shape == (None, 1)


def test_param_count_follows_units() -> None:
    # 4·32·(1+32+1) + 4·32·(32+32+1) + 33
    assert build_model(window=60, units=(32, 32), learning_rate=1e-3).count_params() == 12_705


def _fit_once(seed: int, fast: bool = False) -> list[np.ndarray]:
    configure(seed)
    rng = np.random.default_rng(0)
    x = rng.random((70, 8, 1), dtype=np.float32)
    y = x[:, -1, 0] * 0.9
    # fast: what stages.train uses (XLA, a whole epoch of batches per call, last one partial)
    model = build_model(window=8, units=(4, 4), learning_rate=1e-2, jit_compile=fast,
                        steps_per_execution=5 if fast else 1)
    assert model.jit_compile is fast
    model.fit(x, y, epochs=2, batch_size=16, shuffle=True, verbose=0)
    return [np.asarray(w) for w in model.get_weights()]


def test_same_seed_gives_identical_weights() -> None:
    first, second = _fit_once(3), _fit_once(3)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _fit_once(4)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


XLA_CHECK = """
import numpy as np
import keras
from tests.model.test_model import _fit_once

assert keras.backend.backend() == "tensorflow", keras.backend.backend()
first, second = _fit_once(3, fast=True), _fit_once(3, fast=True)
for a, b in zip(first, second, strict=True):
    np.testing.assert_array_equal(a, b)
# Same arithmetic as the plain fit, up to float32 rounding in a different op order.
for a, b in zip(first, _fit_once(3), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
print("xla deterministic")
"""


def test_xla_training_is_deterministic_and_learns_the_same() -> None:
    """TensorFlow's XLA step (its own compile switch; JAX compiles every step anyway), in its
    own process: Keras keeps the backend it was first imported with, and an earlier test in
    this one may have imported it on JAX."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", XLA_CHECK], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.strip() == "xla deterministic"


def test_save_and_safe_load_roundtrip(tmp_path: Path) -> None:
    model = build_model(window=8, units=(4, 4), learning_rate=1e-2)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_keras_model(path)
    x = np.linspace(0, 1, 16, dtype=np.float32).reshape(2, 8, 1)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupt_model_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match="dvc checkout models"):
        load_network(path)


def test_missing_model_says_which_stage(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="dvc repro train"):
        load_network(tmp_path / "model.keras")
