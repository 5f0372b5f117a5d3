"""The walk-forward plan (crypto_forecast.data.folds): where each fold's data ends and what it
is scored on, as properties over any valid setting; the refusal of a plan too short to
train, stop early or score; and that a fold's arrays read nothing from its cut-off on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_forecast.data.folds import LIVE, fold_arrays, plan_folds
from crypto_forecast.data.series import MinMaxScaler, Split, first_valid, model_series
from crypto_forecast.errors import DataError

PROPERTY = settings(max_examples=300, deadline=None, database=None)
targets = st.sampled_from(["price", "log_return"])


@st.composite
def settings_(draw: st.DrawFn) -> dict[str, object]:
    test_fraction = draw(st.floats(0.02, 0.6))
    return {"n": draw(st.integers(20, 4000)), "window": draw(st.integers(2, 90)),
            "val_fraction": draw(st.floats(0.01, 0.95 - test_fraction)),
            "test_fraction": test_fraction, "folds": draw(st.integers(1, 50)),
            "target": draw(targets)}


def _plan(cfg: dict[str, object]):  # type: ignore[no-untyped-def]
    n = cfg["n"]
    return plan_folds(n, **{k: v for k, v in cfg.items() if k != "n"})  # type: ignore[arg-type]


@PROPERTY
@given(settings_())
def test_the_plan_tiles_the_walk_forward_part_and_ends_with_the_live_model(
        cfg: dict[str, object]) -> None:
    n, window, folds = int(cfg["n"]), int(cfg["window"]), int(cfg["folds"])  # type: ignore[call-overload]
    n_test = round(n * float(cfg["test_fraction"]))  # type: ignore[arg-type]
    n_val = round(n * float(cfg["val_fraction"]))  # type: ignore[arg-type]
    need = window + 2 + first_valid(cfg["target"])  # type: ignore[arg-type]
    feasible = n_val >= 2 and n - n_test - n_val >= need and n_test >= folds
    if not feasible:
        with pytest.raises(DataError, match="too few"):
            _plan(cfg)
        return
    plan = _plan(cfg)
    *walk, live = plan
    assert [f.name for f in walk] == [f"fold_{k}" for k in range(1, folds + 1)]
    assert live.name == LIVE and live.is_live and not any(f.is_live for f in walk)

    cutoffs = [f.cutoff for f in plan]
    assert all(a < b for a, b in itertools.pairwise(cutoffs))  # strictly increasing
    # The scored blocks tile the last test_fraction exactly: no gap, no overlap, none empty,
    # as even as whole days allow.
    assert walk[0].cutoff == n - n_test
    assert [f.score_stop for f in walk[:-1]] == [f.cutoff for f in walk[1:]]
    assert walk[-1].score_stop == n
    blocks = [f.score_stop - f.cutoff for f in walk]
    assert sum(blocks) == n_test and min(blocks) >= 1 and max(blocks) - min(blocks) <= 1
    for f in plan:
        # Training stops before the validation slice, which ends the day before the cut-off.
        assert f.train_end < f.cutoff and f.cutoff - f.train_end == n_val
        assert f.train_end - window - first_valid(cfg["target"]) >= 2  # type: ignore[arg-type]
        np.testing.assert_array_equal(f.val_origins(), np.arange(f.train_end - 1, f.cutoff - 1))
        np.testing.assert_array_equal(f.score_origins(),
                                      np.arange(f.cutoff - 1, f.score_stop - 1))
    # The live model: cut-off after the last day, nothing to score.
    assert live.cutoff == n and live.score_stop == n and live.train_end == n - n_val
    assert live.score_origins().size == 0
    # Fold 1 is the lecture's single train | val | test split.
    assert walk[0].train_end == n - n_test - n_val
    if n_test >= 2 and n - n_test - n_val >= window + 2:
        lecture = Split.chronological(n, window, float(cfg["val_fraction"]),  # type: ignore[arg-type]
                                      float(cfg["test_fraction"]))  # type: ignore[arg-type]
        assert (walk[0].train_end, walk[0].cutoff) == (lecture.train_end, lecture.val_end)


def test_the_default_split_of_a_year() -> None:
    plan = plan_folds(365, window=10, val_fraction=0.15, test_fraction=0.2, folds=2)
    assert [(f.name, f.train_end, f.cutoff, f.score_stop) for f in plan] == [
        ("fold_1", 237, 292, 328), ("fold_2", 273, 328, 365), ("live", 310, 365, 365)]


@pytest.mark.parametrize(("n", "kwargs", "problem"), [
    (10, {"window": 2, "val_fraction": 0.1, "test_fraction": 0.2, "folds": 1},
     "the validation slice has 1 days (needs ≥ 2)"),
    # 40 days: 16 scored, 12 validation, 12 left to train; a log return needs one more
    (40, {"window": 10, "val_fraction": 0.3, "test_fraction": 0.4, "folds": 1,
          "target": "log_return"}, "fold 1 has 12 training days (needs ≥ 13)"),
    (30, {"window": 10, "val_fraction": 0.3, "test_fraction": 0.4, "folds": 1},
     "fold 1 has 9 training days (needs ≥ 12)"),
    (100, {"window": 10, "val_fraction": 0.1, "test_fraction": 0.05, "folds": 6},
     "the walk-forward part has 5 days for 6 folds"),
])
def test_too_short_data_is_refused_with_the_fix(n: int, kwargs: dict[str, object],
                                                 problem: str) -> None:
    with pytest.raises(DataError) as caught:
        plan_folds(n, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"{n} days are too few for window={kwargs['window']}")
    assert f": {problem} — " in message
    assert "widen the date range, shrink preprocess.window" in message


def test_just_enough_data_is_planned() -> None:
    # the price twin of the refused log-return case: 12 training days are enough
    plan = plan_folds(40, window=10, val_fraction=0.3, test_fraction=0.4, folds=1)
    assert [(f.train_end, f.cutoff, f.score_stop) for f in plan] == [(12, 24, 40), (28, 40, 40)]
    assert len(plan_folds(100, window=10, val_fraction=0.1, test_fraction=0.05, folds=5)) == 6


def test_the_refusal_names_the_setting_people_edit() -> None:
    with pytest.raises(DataError, match=r"preprocess\.folds"):
        plan_folds(100, window=10, val_fraction=0.1, test_fraction=0.05, folds=6)


# --- fold_arrays: a fold's scaler and windows, from the days before its cut-off only ----------

N = 160
WINDOW = 10
CLOSE = 800 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.03, N)))
PLAN = plan_folds(N, window=WINDOW, val_fraction=0.15, test_fraction=0.25, folds=3)
prices = st.floats(1.0, 1e5, allow_nan=False, allow_infinity=False)


@PROPERTY
@given(fold=st.sampled_from(PLAN[:-1]), target=targets, data=st.data())
def test_fold_arrays_read_nothing_from_the_cutoff_on(fold, target, data) -> None:  # type: ignore[no-untyped-def]
    scaler, arrays = fold_arrays(CLOSE, fold, window=WINDOW, target=target)
    later = data.draw(st.lists(prices, min_size=N - fold.cutoff, max_size=N - fold.cutoff))
    changed = CLOSE.copy()
    changed[fold.cutoff:] = later
    scaler2, arrays2 = fold_arrays(changed, fold, window=WINDOW, target=target)
    assert scaler2 == scaler
    assert arrays2.keys() == arrays.keys() == {"x_train", "y_train", "x_val", "y_val"}
    for key, value in arrays.items():
        np.testing.assert_array_equal(arrays2[key], value, err_msg=key)


@PROPERTY
@given(fold=st.sampled_from(PLAN), target=targets, data=st.data())
def test_the_scaler_and_training_windows_never_see_the_validation_slice(fold, target, data) -> None:  # type: ignore[no-untyped-def]
    scaler, arrays = fold_arrays(CLOSE, fold, window=WINDOW, target=target)
    later = data.draw(st.lists(prices, min_size=N - fold.train_end, max_size=N - fold.train_end))
    changed = CLOSE.copy()
    changed[fold.train_end:] = later
    scaler2, arrays2 = fold_arrays(changed, fold, window=WINDOW, target=target)
    assert scaler2 == scaler
    np.testing.assert_array_equal(arrays2["x_train"], arrays["x_train"])
    np.testing.assert_array_equal(arrays2["y_train"], arrays["y_train"])


@pytest.mark.parametrize("target", ["price", "log_return"])
def test_fold_arrays_are_the_scaled_windows_of_its_days(target: str) -> None:
    start = WINDOW + first_valid(target)  # type: ignore[arg-type]
    values = model_series(CLOSE, target)  # type: ignore[arg-type]
    for fold in PLAN:
        scaler, arrays = fold_arrays(CLOSE, fold, window=WINDOW, target=target)  # type: ignore[arg-type]
        assert scaler == MinMaxScaler.fit(values[: fold.train_end])
        assert arrays["x_train"].shape == (fold.train_end - start, WINDOW, 1)
        assert arrays["x_val"].shape == (fold.cutoff - fold.train_end, WINDOW, 1)
        scaled = scaler.transform(values).astype(np.float32)
        np.testing.assert_array_equal(arrays["y_train"], scaled[start: fold.train_end])
        np.testing.assert_array_equal(arrays["y_val"], scaled[fold.train_end: fold.cutoff])
        # the last validation window ends the day before its target: the day before the cut-off
        np.testing.assert_array_equal(arrays["x_val"][-1, :, 0],
                                      scaled[fold.cutoff - 1 - WINDOW: fold.cutoff - 1])
        # not vacuous: the day before the cut-off is read
        moved = CLOSE.copy()
        moved[fold.cutoff - 1] *= 1.5
        _, arrays2 = fold_arrays(moved, fold, window=WINDOW, target=target)  # type: ignore[arg-type]
        assert arrays2["y_val"][-1] != arrays["y_val"][-1]


def test_the_live_model_sees_the_last_day() -> None:
    live = PLAN[-1]
    assert live.is_live and live.cutoff == N
    for target in ("price", "log_return"):
        scaler, arrays = fold_arrays(CLOSE, live, window=WINDOW, target=target)  # type: ignore[arg-type]
        last = model_series(CLOSE, target)[-1]  # type: ignore[arg-type]
        assert arrays["y_val"][-1] == np.float32(scaler.transform(np.array([last]))[0])
