"""Fitting the network: the lecture's recipe (Adam + MSE, early stopping on validation with
the best weights restored) on the Keras backend `train.backend` names, each step compiled
with XLA and a whole epoch of batches per call."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from crypto_forecast.params import Params


def fit_network(params: Params, arrays: dict[str, np.ndarray], callbacks: Sequence[Any] = ()
                ) -> tuple[Any, dict[str, list[float]]]:
    """Build and fit the network; returns the best-val model and the loss history.

    What a plain `model.fit` computes (same seed, batches, optimizer), run faster: each
    step XLA-compiled (and on TensorFlow a whole epoch of batches per call from Python).
    Runs on `train.backend`, which must be this process's Keras backend if Keras is
    already imported.
    """
    from crypto_forecast.model.backend import configure, use_backend
    from crypto_forecast.model.keras_net import build_model

    cfg = params.train
    use_backend(cfg.backend)
    keras = configure(cfg.seed)
    on_tensorflow = cfg.backend == "tensorflow"
    # TensorFlow: one XLA call per epoch saves its per-call overhead. JAX compiles every step
    # anyway and would only loop over the batches in Python, so it runs them one by one.
    steps = max(1, math.ceil(len(arrays["x_train"]) / cfg.batch_size)) if on_tensorflow else 1
    model = build_model(params.preprocess.window, cfg.units, cfg.learning_rate,
                        jit_compile=True, steps_per_execution=steps)
    history = model.fit(arrays["x_train"], arrays["y_train"],
                        validation_data=(arrays["x_val"], arrays["y_val"]),
                        epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
                        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss",
                                                                 patience=cfg.patience,
                                                                 restore_best_weights=True),
                                   *callbacks],
                        verbose=0)
    if on_tensorflow:
        # Later predict() calls (signature, MLflow's input example) are tiny: compiling them
        # with XLA would cost more than it saves. (On JAX, uncompiled is slower: ~2.5 s.)
        model.jit_compile = False
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def history_csv(history: dict[str, list[float]]) -> str:
    """The loss curves as the CSV DVC plots: epoch, loss, val_loss."""
    lines = ["epoch,loss,val_loss"]
    for i, (lo, vl) in enumerate(zip(history["loss"], history["val_loss"], strict=True), start=1):
        lines.append(f"{i},{lo:.8g},{vl:.8g}")
    return "\n".join(lines) + "\n"
