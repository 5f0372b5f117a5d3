"""Walk-forward folds: where each model's data ends, and what it is scored on.

The later part of the history (`preprocess.test_fraction` of it) is cut into
`preprocess.folds` blocks. At each block's first day (its cut-off) a model is trained with the
pipeline's own recipe on the days before the cut-off only: the last `val_days` of them stop
its training early and calibrate its bands, the rest fit its weights and its scaler. It is
then scored 1..horizon days ahead from every origin up to the next cut-off. Fold 1's data is
the single train | val | test split the lecture used.

The live model, the one forecast serves, follows the same recipe with its cut-off after the
last day: it has seen every day, the latest `val_days` through early stopping.

Pure NumPy: preprocess, train and evaluate share these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crypto_forecast.data.series import (
    Float32Array,
    FloatArray,
    MinMaxScaler,
    Target,
    first_valid,
    make_windows,
    model_series,
)
from crypto_forecast.errors import DataError

LIVE = "live"


@dataclass(frozen=True)
class Fold:
    """One model's data, as day indices of the series (end exclusive).

    Targets `[first_target, train_end)` fit the weights (and the scaler); `[train_end,
    cutoff)` stop training early and calibrate the bands; origins `[cutoff - 1, score_stop -
    1)` are scored (their 1-day targets lie in `[cutoff, score_stop)`; longer horizons may
    reach past `score_stop`, never past the data). The live model scores nothing.
    """

    name: str
    train_end: int
    cutoff: int
    score_stop: int

    @property
    def is_live(self) -> bool:
        return self.name == LIVE

    def score_origins(self) -> np.ndarray:
        return np.arange(self.cutoff - 1, self.score_stop - 1)

    def val_origins(self) -> np.ndarray:
        """Origins whose 1-day target lies in the validation slice."""
        return np.arange(self.train_end - 1, self.cutoff - 1)


def plan_folds(n: int, *, window: int, val_fraction: float, test_fraction: float, folds: int,
               target: Target = "price") -> list[Fold]:
    """The walk-forward folds in time order, then the live model; refuses a plan whose
    parts would be too short to train, stop early or score."""
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    first_cut = n - n_test
    need_train = window + 2 + first_valid(target)
    problem = None
    if n_val < 2:
        problem = f"the validation slice has {n_val} days (needs ≥ 2)"
    elif first_cut - n_val < need_train:
        problem = f"fold 1 has {max(first_cut - n_val, 0)} training days (needs ≥ {need_train})"
    elif n_test < folds:
        problem = f"the walk-forward part has {n_test} days for {folds} folds"
    if problem:
        raise DataError(
            f"{n} days are too few for window={window}, val_fraction={val_fraction}, "
            f"test_fraction={test_fraction} and preprocess.folds={folds}: {problem} — widen the "
            "date range, shrink preprocess.window or use fewer preprocess.folds")
    cuts = [first_cut + (k * n_test) // folds for k in range(folds)] + [n]
    plan = [Fold(name=f"fold_{k + 1}", train_end=cuts[k] - n_val, cutoff=cuts[k],
                 score_stop=cuts[k + 1]) for k in range(folds)]
    plan.append(Fold(name=LIVE, train_end=n - n_val, cutoff=n, score_stop=n))
    return plan


def fold_scaler(values: FloatArray, fold: Fold) -> MinMaxScaler:
    """The scaler fitted on the fold's training days only (`values` in model units)."""
    return MinMaxScaler.fit(values[: fold.train_end])


def fold_arrays(close: FloatArray, fold: Fold, *, window: int, target: Target
                ) -> tuple[MinMaxScaler, dict[str, Float32Array]]:
    """The fold's scaler and its `x_train, y_train, x_val, y_val`, from the closes before its
    cut-off only: nothing from `close[fold.cutoff:]` is read."""
    seen = np.asarray(close, dtype=np.float64)[: fold.cutoff]
    values = model_series(seen, target)
    scaler = fold_scaler(values, fold)
    scaled = scaler.transform(values)
    arrays: dict[str, Float32Array] = {}
    start = window + first_valid(target)
    for part, targets in (("train", range(start, fold.train_end)),
                          ("val", range(fold.train_end, fold.cutoff))):
        arrays[f"x_{part}"], arrays[f"y_{part}"] = make_windows(scaled, targets, window)
    return scaler, arrays
