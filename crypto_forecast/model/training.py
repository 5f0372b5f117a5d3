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
                                   keras.callbacks.TerminateOnNaN(), *callbacks],
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


# --- refusals before and after fitting (bad-input defences) --------------------------------

def estimate_training_bytes(window: int, units: Sequence[int], batch_size: int) -> int:
    """A rough upper estimate of the memory `fit_network` needs, in bytes.

    Weights, their gradients and Adam's two moments (4 copies), plus the recurrent kernels'
    per-time-step gradients an XLA-compiled step may hold at once (`window` copies), plus
    each layer's gates and states for a batch over the window, all float32.
    """
    params, features, activations = 0, 1, 0
    for u in units:
        params += 4 * (u * (features + u) + u)
        activations += batch_size * window * 6 * u
        features = u
    params += features + 1
    recurrent = sum(4 * u * u for u in units)
    return 4 * (4 * params + window * recurrent + 4 * activations)


def available_memory_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, or the cgroup limit if lower."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as cgroup:
            limit = cgroup.read().strip()
        if limit.isdigit():
            found.append(int(limit))
    except OSError:
        pass
    return min(found) if found else None


def check_memory(params: Params) -> None:
    """Refuse up front a network too large to train here, with the estimate."""
    from crypto_forecast.errors import ConfigError

    cfg = params.train
    need = estimate_training_bytes(params.preprocess.window, cfg.units, cfg.batch_size)
    have = available_memory_bytes()
    if have is not None and need > have:
        raise ConfigError(
            f"params.yaml: train.units {list(cfg.units)} (window {params.preprocess.window}, "
            f"batch {cfg.batch_size}) needs about {need / 2**30:.1f} GiB to train, more than "
            f"the {have / 2**30:.1f} GiB available here — use fewer units (the lecture's "
            "[50, 50] needs a few MB)")


def require_finite(model: Any, history: dict[str, list[float]]) -> None:
    """Refuse to save or register a model whose training diverged (NaN or infinite loss or
    weights): it would be registered as `candidate` and break every later stage."""
    from crypto_forecast.errors import PipelineError

    for key in ("loss", "val_loss"):
        values = history.get(key, [])
        bad = [i for i, v in enumerate(values, start=1) if not math.isfinite(v)]
        if bad or not values:
            where = f"{key} was {values[bad[0] - 1]} at epoch {bad[0]}" if bad else f"no {key}"
            raise PipelineError(
                f"training diverged ({where}); the model was not saved or registered — lower "
                "train.learning_rate (e.g. 0.001) and rerun")
    if not all(np.isfinite(w).all() for w in model.get_weights()):
        raise PipelineError("training diverged (non-finite weights); the model was not saved or "
                            "registered — lower train.learning_rate (e.g. 0.001) and rerun")
