"""The lecture's stacked LSTM in Keras, built from params, on either backend."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from crypto_forecast.model.backend import keras_module

if TYPE_CHECKING:
    import keras

# LSTM(50, return_sequences) → LSTM(50) → Dense(1) on one feature:
# 4·50·(1+50+1) + 4·50·(50+50+1) + (50+1) = 10,400 + 20,200 + 51.
LECTURE_UNITS = (50, 50)
LECTURE_PARAM_COUNT = 30_651


def build_model(window: int, units: tuple[int, ...], learning_rate: float,
                n_features: int = 1, *, jit_compile: bool = False,
                steps_per_execution: int = 1) -> keras.Model:
    """Stacked LSTMs (all but the last return sequences) and a Dense(1) head, Adam + MSE.

    `jit_compile` compiles each training step with XLA (on JAX every step always is);
    `steps_per_execution` runs that many batches per call from Python. Neither changes what
    a step computes (XLA may round differently in the last bits), only how it runs (see
    README "Performance"). Builds on the active backend (crypto_forecast.model.backend).
    """
    keras = keras_module()

    layers: list[Any] = [keras.Input(shape=(window, n_features), name="window")]
    for i, size in enumerate(units):
        layers.append(keras.layers.LSTM(size, return_sequences=i < len(units) - 1,
                                        name=f"lstm_{i + 1}"))
    layers.append(keras.layers.Dense(1, name="next_value"))
    model = keras.Sequential(layers, name="lstm_forecaster")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Model doesn't support `jit_compile=True`")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse",
                      jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    if (jit_compile and not model.jit_compile and keras.backend.backend() == "tensorflow"
            and _cpu_only()):
        # Keras silently drops XLA whenever op determinism is on, because some XLA ops are
        # not deterministic on GPU. On CPU the XLA-compiled step gives bit-identical weights
        # run to run (tests/model/test_model.py checks it) and shorter epochs (bench/speed.py).
        model._jit_compile = True
    count = model.count_params()
    if tuple(units) == LECTURE_UNITS and n_features == 1 and count != LECTURE_PARAM_COUNT:
        raise AssertionError(f"lecture network has {count} parameters, expected 30,651")
    return model


def _cpu_only() -> bool:
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")
