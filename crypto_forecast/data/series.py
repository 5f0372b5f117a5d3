"""Pure numeric pieces shared by preprocess, train, evaluate and forecast.

No TensorFlow here: preprocess imports this and must start fast.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crypto_forecast.errors import DataError

FloatArray = NDArray[np.float64]
Float32Array = NDArray[np.float32]
Target = Literal["price", "log_return"]


def model_series(close: FloatArray, target: Target) -> FloatArray:
    """What the network models for each day: the close itself, or the log return into that
    day (`log(close[t] / close[t-1])`, NaN on day 0, which has no previous close)."""
    values = np.asarray(close, dtype=np.float64)
    if target == "price":
        return values.copy()
    if np.any(values <= 0):
        raise DataError("prices must be positive for preprocess.target: log_return — "
                        "check the data or use target: price")
    out = np.full_like(values, np.nan)
    out[1:] = np.diff(np.log(values))
    return out


def first_valid(target: Target) -> int:
    """Index of the first day with a defined model value (day 0 has no log return)."""
    return 0 if target == "price" else 1


def to_prices(values: FloatArray, last_close: FloatArray, target: Target) -> FloatArray:
    """Model-unit forecasts (n_origins, horizon), already unscaled, as prices.

    Prices are the values themselves; log returns are accumulated from each origin's last
    known close: `close[o] * exp(r[o+1] + ... + r[o+h])`.
    """
    v = np.asarray(values, dtype=np.float64)
    if target == "price":
        return v.copy()
    base = np.asarray(last_close, dtype=np.float64).reshape(-1, 1)
    return np.asarray(base * np.exp(np.cumsum(v, axis=1)), dtype=np.float64)


@dataclass(frozen=True)
class MinMaxScaler:
    """Min-max scaling to [0, 1] with bounds fitted on the training part only.

    Serialised as JSON (never pickle). Values outside the training range map outside
    [0, 1]; that is expected for later prices and not clipped.
    """

    data_min: float
    data_max: float

    @classmethod
    def fit(cls, values: FloatArray) -> MinMaxScaler:
        """Bounds of the finite values (a log-return series starts with NaN)."""
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            raise DataError("no finite training values to scale — use a longer range")
        lo, hi = float(np.min(finite)), float(np.max(finite))
        if not hi > lo:
            raise DataError("training prices are constant; cannot scale — use a longer range")
        return cls(lo, hi)

    def transform(self, values: FloatArray) -> FloatArray:
        return (np.asarray(values, dtype=np.float64) - self.data_min) / (self.data_max - self.data_min)

    def inverse(self, scaled: FloatArray) -> FloatArray:
        return np.asarray(scaled, dtype=np.float64) * (self.data_max - self.data_min) + self.data_min

    def to_json(self) -> dict[str, float | str]:
        return {"kind": "minmax", "data_min": self.data_min, "data_max": self.data_max,
                "feature_range": "0..1", "fitted_on": "train"}

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> MinMaxScaler:
        try:
            return cls(float(obj["data_min"]), float(obj["data_max"]))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"scaler JSON is malformed ({exc}) — rerun `dvc repro preprocess`") from None


@dataclass(frozen=True)
class Split:
    """Chronological split by target index: targets [0, train_end) train, then val, then test.

    Window inputs may reach back across a boundary (the past is known); targets never do.
    """

    n: int
    window: int
    train_end: int
    val_end: int

    @classmethod
    def chronological(cls, n: int, window: int, val_fraction: float, test_fraction: float) -> Split:
        n_test = round(n * test_fraction)
        n_val = round(n * val_fraction)
        train_end = n - n_test - n_val
        need = window + 2
        if n_test < 2 or n_val < 2 or train_end < need:
            raise DataError(
                f"{n} rows are too few for window={window} with val_fraction={val_fraction} "
                f"and test_fraction={test_fraction} (each split needs ≥ 2 rows, train ≥ "
                f"{need}) — widen the date range or shrink preprocess.window"
            )
        return cls(n=n, window=window, train_end=train_end, val_end=n - n_test)

    def target_range(self, part: str) -> range:
        """Indices of the series whose values are targets of `part`'s windows."""
        if part == "train":
            return range(self.window, self.train_end)
        if part == "val":
            return range(self.train_end, self.val_end)
        if part == "test":
            return range(self.val_end, self.n)
        raise ValueError(part)

    def labels(self) -> list[str]:
        return ["train" if i < self.train_end else "val" if i < self.val_end else "test"
                for i in range(self.n)]


def make_windows(series: FloatArray, targets: range, window: int) -> tuple[Float32Array, Float32Array]:
    """Inputs `series[t-window:t]` and targets `series[t]` for each t in `targets`.

    Returns X with shape (len(targets), window, 1) and y with shape (len(targets),).
    """
    values = np.asarray(series, dtype=np.float64)
    if targets.start < window:
        raise ValueError("first target needs a full window before it")
    idx = np.arange(targets.start, targets.stop)
    view = np.lib.stride_tricks.sliding_window_view(values, window)
    x = view[idx - window][..., np.newaxis].astype(np.float32)
    y = values[idx].astype(np.float32)
    return x, y


def split_and_scale(close: pd.Series, window: int, val_fraction: float, test_fraction: float,
                    target: Target = "price") -> tuple[pd.DataFrame, MinMaxScaler, Split]:
    """Label each day train/val/test and fit the scaler on the training days only.

    `scaled` is the scaled model value: the close, or the log return into that day.
    (The lecture fitted the scaler on all data, which leaks the test period's range into
    training.)
    """
    split = Split.chronological(len(close), window, val_fraction, test_fraction)
    values = close.to_numpy(dtype=np.float64)
    modelled = model_series(values, target)
    scaler = MinMaxScaler.fit(modelled[: split.train_end])
    frame = pd.DataFrame({"close": values, "scaled": scaler.transform(modelled),
                          "split": split.labels()}, index=close.index)
    frame.index.name = "date"
    return frame, scaler, split


def split_windows(frame: pd.DataFrame, split: Split, window: int, target: Target
                  ) -> dict[str, Float32Array]:
    """`x_<part>`, `y_<part>` for train, val and test from the scaled series."""
    arrays: dict[str, Float32Array] = {}
    for part in ("train", "val", "test"):
        targets = split.target_range(part)
        if part == "train":  # a log-return window cannot start on day 0 (no return there)
            targets = range(targets.start + first_valid(target), targets.stop)
        x, y = make_windows(frame["scaled"].to_numpy(), targets, window)
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x, y
    return arrays


def training_csv_bytes(raw_csv: bytes, cut: dt.date | None) -> bytes:
    """download's Date,Close CSV without the rows after `cut`: what the training series holds,
    byte for byte, so its sha256 names the closes the networks learned from. Unchanged when
    there is no cut."""
    if cut is None:
        return raw_csv
    lines = raw_csv.splitlines(keepends=True)
    last = cut.isoformat().encode()
    return b"".join(lines[:1] + [line for line in lines[1:] if line[:10] <= last])


def with_live_rows(frame: pd.DataFrame, close: pd.Series) -> pd.DataFrame:
    """The training frame followed by the closes after it (split `live`, no scaled value):
    the latest series forecast reads."""
    after = close[close.index > frame.index[-1]]
    extra = pd.DataFrame({"close": after.to_numpy(dtype=np.float64), "scaled": np.nan,
                          "split": "live"}, index=after.index)
    extra.index.name = frame.index.name
    return pd.concat([frame, extra]) if len(extra) else frame.copy()
