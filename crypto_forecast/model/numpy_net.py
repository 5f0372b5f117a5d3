"""The trained network's forward pass in NumPy, read straight from the `.keras` archive.

evaluate and forecast only run the network forward, and TensorFlow's import alone costs
them ~7 s each (bench/speed.py): longer than their own work. Here the archive's
`config.json` and `model.weights.h5` are read with zipfile, json and h5py (no code from the
archive runs, so it is safe by construction), and the stacked LSTM is computed exactly as
Keras's `LSTMCell` computes it, in float32:

    z = x @ kernel + h @ recurrent_kernel + bias;  i, f, g, o = split(z, 4)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g);     h = sigmoid(o) * tanh(c)

tests/model/test_network.py checks it against Keras's own `predict` on trained and random
networks. Only the architecture this pipeline trains is accepted (stacked LSTMs, tanh /
sigmoid, then one Dense); anything else is refused with a message, never guessed at.

`shared_prefix_forecast` is the backtest's engine: the same numbers as feeding each prediction
back through a full forward pass (evaluation.backtest.feedback_forecast), with far less work,
because the LSTM state after a window's real-data prefix is shared (see its docstring).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from crypto_forecast.data.series import Float32Array, FloatArray
from crypto_forecast.errors import ArtifactError, DataError

# Per LSTM layer: (h, c), each (batch, units).
State = list[tuple[Float32Array, Float32Array]]


@dataclass(frozen=True)
class LSTMWeights:
    """One LSTM layer's weights as Keras stores them (gate order i, f, c, o)."""

    kernel: Float32Array  # (inputs, 4 * units)
    recurrent: Float32Array  # (units, 4 * units)
    bias: Float32Array  # (4 * units,)

    @property
    def units(self) -> int:
        return int(self.recurrent.shape[0])


@dataclass(frozen=True)
class _Prepared:
    """The same layer arranged for speed, exactly: gates reordered to (i, f, o, c) and the
    i, f, o columns halved (a power of two, so no rounding), which makes one tanh over all
    four gates give sigmoid(z) = 0.5 * tanh(z / 2) + 0.5 for three of them."""

    kernel: Float32Array
    recurrent: Float32Array
    bias: Float32Array
    units: int

    @classmethod
    def of(cls, w: LSTMWeights) -> _Prepared:
        u = w.units
        order = np.r_[0:2 * u, 3 * u:4 * u, 2 * u:3 * u]
        scale = np.r_[np.full(3 * u, 0.5), np.ones(u)].astype(np.float32)
        return cls(w.kernel[:, order] * scale, w.recurrent[:, order] * scale,
                   w.bias[order] * scale, u)


@dataclass(frozen=True)
class Network:
    """Stacked LSTMs (every one but the last returning sequences) and a Dense(1) head."""

    lstms: tuple[LSTMWeights, ...]
    dense_kernel: Float32Array  # (units, 1)
    dense_bias: Float32Array  # (1,)

    @property
    def param_count(self) -> int:
        arrays = [a for w in self.lstms for a in (w.kernel, w.recurrent, w.bias)]
        return int(sum(a.size for a in [*arrays, self.dense_kernel, self.dense_bias]))

    @cached_property
    def _layers(self) -> tuple[_Prepared, ...]:
        return tuple(_Prepared.of(w) for w in self.lstms)

    def zero_state(self, batch: int) -> State:
        return [(np.zeros((batch, w.units), np.float32), np.zeros((batch, w.units), np.float32))
                for w in self.lstms]

    def run(self, x: Float32Array, state: State | None = None, keep: Iterable[int] = ()
            ) -> tuple[State, dict[int, State]]:
        """Feed x (batch, steps[, features]) from `state` (zeros if None).

        Returns the final state and, for each step count k in `keep`, the state after the
        first k steps. Layer by layer: each layer's input projection for all steps is one
        matrix product, and only `h @ recurrent` stays inside the time loop.
        """
        seq = np.asarray(x, dtype=np.float32)
        if seq.ndim == 2:
            seq = seq[..., np.newaxis]
        batch, steps = seq.shape[:2]
        start = state if state is not None else self.zero_state(batch)
        marks = set(keep)
        kept: dict[int, State] = {k: [] for k in marks}
        final: State = []
        for n, (layer, (h, c)) in enumerate(zip(self._layers, start, strict=True)):
            u = layer.units
            proj = (seq.reshape(batch * steps, -1) @ layer.kernel).reshape(batch, steps, 4 * u)
            proj += layer.bias
            top = n == len(self._layers) - 1
            out = seq if top else np.empty((batch, steps, u), dtype=np.float32)
            for t in range(steps):
                z = h @ layer.recurrent
                z += proj[:, t]
                np.tanh(z, out=z)
                gates = z[:, :3 * u]
                gates *= 0.5
                gates += 0.5  # sigmoid of i, f, o
                c = gates[:, u:2 * u] * c + gates[:, :u] * z[:, 3 * u:]
                h = gates[:, 2 * u:] * np.tanh(c)
                if not top:
                    out[:, t] = h
                if t + 1 in marks:
                    kept[t + 1].append((h, c))
            final.append((h, c))
            seq = out
        return final, kept

    def head(self, state: State) -> Float32Array:
        """The Dense(1) output for the top layer's h: (batch,)."""
        out: Float32Array = (state[-1][0] @ self.dense_kernel + self.dense_bias).reshape(-1)
        return out

    def predict(self, x: Float32Array) -> Float32Array:
        """What `model.predict(x)` returns, flattened: one value per window."""
        return self.head(self.run(x)[0])


# --------------------------------------------------------------------------- loading
def _refuse(path: Path, why: str) -> ArtifactError:
    return ArtifactError(f"{path} {why} — restore it with `dvc checkout models` or retrain "
                         "with `dvc repro -f train`")


def load_network(path: Path) -> Network:
    """Read a `.keras` archive written by the train stage, without TensorFlow."""
    if not path.exists():
        raise ArtifactError(f"{path} is missing — run `dvc repro train` first")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_bytes = archive.read("model.weights.h5")
        import h5py

        with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
            return _from_archive(path, config, h5)
    except ArtifactError:
        raise
    except Exception as exc:  # zipfile, json and h5py raise many types for a broken file
        raise _refuse(path, f"is not a readable Keras model ({type(exc).__name__})") from None


def _from_archive(path: Path, config: dict[str, Any], h5: Any) -> Network:
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
    names = [layer["class_name"] for layer in layers]
    if (config.get("class_name") != "Sequential" or len(names) < 2 or names[-1] != "Dense"
            or any(n != "LSTM" for n in names[:-1])):
        raise _refuse(path, f"is not the stacked-LSTM network this pipeline trains "
                            f"(layers: {', '.join(names) or 'none'})")
    lstms = []
    for k, layer in enumerate(layers[:-1]):
        cfg = layer["config"]
        plain = (cfg.get("activation") == "tanh" and cfg.get("recurrent_activation") == "sigmoid"
                 and cfg.get("use_bias", True) and not cfg.get("go_backwards")
                 and not cfg.get("stateful") and not cfg.get("return_state")
                 and bool(cfg.get("return_sequences")) == (k < len(layers) - 2))
        if not plain:
            raise _refuse(path, f"has an LSTM layer ({cfg.get('name')}) set up differently from "
                                "the one this pipeline trains")
        vars_ = h5[f"layers/{'lstm' if k == 0 else f'lstm_{k}'}/cell/vars"]
        lstms.append(LSTMWeights(*(np.asarray(vars_[str(i)], dtype=np.float32) for i in range(3))))
    dense_cfg = layers[-1]["config"]
    if dense_cfg.get("activation", "linear") != "linear" or not dense_cfg.get("use_bias", True):
        raise _refuse(path, "has an output layer set up differently from the one this pipeline "
                            "trains")
    dense = h5["layers/dense/vars"]
    net = Network(tuple(lstms), np.asarray(dense["0"], dtype=np.float32),
                  np.asarray(dense["1"], dtype=np.float32))
    width = int(net.lstms[0].kernel.shape[0])
    for w in net.lstms:
        u = w.units
        if (w.recurrent.shape != (u, 4 * u) or w.bias.shape != (4 * u,)
                or w.kernel.shape != (width, 4 * u)):
            raise _refuse(path, "has LSTM weights of inconsistent shapes")
        width = u
    if net.dense_kernel.shape != (width, 1) or net.dense_bias.shape != (1,):
        raise _refuse(path, "has an output layer of the wrong shape")
    return net


# --------------------------------------------------------------------------- recursion
def shared_prefix_forecast(net: Network, values: FloatArray, origins: np.ndarray, window: int,
                       horizon: int) -> FloatArray:
    """Forecast `horizon` steps from every origin, each prediction fed back as the newest
    input: what evaluation.backtest.feedback_forecast computes, in (n_origins, horizon) model
    units, but with the shared work done once.

    Step h (0-based) from origin o sees `values[o-window+1+h .. o]` then its own h earlier
    predictions. The LSTM state after that real-data prefix depends only on where the
    prefix starts (s = o-window+1+h) and how long it is, so one pass over the windows that
    start at every such s, keeping the state after each prefix length, serves every origin
    and step. Each step then only runs its h predicted inputs from there. For 438 origins,
    a 60-day window and 10 days that is ~1.8 forward passes' work instead of 10.

    Only `values[:o + 1]` shapes origin o's forecasts (the state after a prefix never sees
    what follows it; tests check that later values change nothing).
    """
    idx = np.asarray(origins, dtype=np.int64).reshape(-1)
    vals = np.asarray(values, dtype=np.float32)
    n = idx.size
    out = np.empty((n, horizon), dtype=np.float32)
    if n == 0:
        return out.astype(np.float64)
    if idx.min() < window - 1 or idx.max() >= vals.size:
        raise ValueError("every origin needs a full window of history inside the series")
    real = vals[idx.min() - window + 1: idx.max() + 1]
    if not np.all(np.isfinite(real)):
        raise DataError("a backtest window holds missing values — rerun `dvc repro -f preprocess`")

    # Steps h < window start from a real-data prefix of length window - h; later ones see
    # only their own predictions and start from the zero state.
    shared = min(horizon, window)
    first_start = int(idx.min()) - window + 1
    starts = np.arange(first_start, int(idx.max()) - window + 1 + shared)
    # One pass over `window` steps from every start. Nothing after the last origin is read:
    # zeros stand in for it, and they only reach states no origin uses (a prefix ending at
    # origin o stops at o).
    padded = np.zeros(starts[-1] + window, dtype=np.float32)
    padded[first_start: idx.max() + 1] = real
    x = np.lib.stride_tricks.sliding_window_view(padded, window)[starts]  # (starts, window)
    _, kept = net.run(x, keep=range(window - shared + 1, window + 1))
    row = idx - int(idx.min())  # origin o's step-0 start; step h starts h rows later
    out[:, 0] = net.head(kept[window])[row]
    for h in range(1, horizon):
        if h < window:
            st: State = [(hh[row + h], cc[row + h]) for hh, cc in kept[window - h]]
            fed = out[:, :h]
        else:
            st = net.zero_state(n)
            fed = out[:, h - window: h]
        out[:, h] = net.head(net.run(fed, st)[0])
    return out.astype(np.float64)
