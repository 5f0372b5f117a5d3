"""No look-ahead per fold, end to end: fold models trained with the pipeline's own recipe in
worker processes (`fit_all`), on a small synthetic series and on copies whose later prices
were changed. What fold_1 learned, and every row the walk-forward backtest writes for it,
must not depend on any price it was not allowed to see.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.folds import Fold, fold_arrays, plan_folds
from crypto_forecast.data.series import model_series
from crypto_forecast.data.synthetic import synthetic_prices
from crypto_forecast.evaluation.walk_forward import FoldModel, fold_table, walk_forward_table
from crypto_forecast.model.numpy_net import Network, load_network
from crypto_forecast.model.parallel import FitJob, fit_all
from crypto_forecast.params import Params, parse_params
from tests.helpers import TINY_PARAMS

pytestmark = pytest.mark.slow

N, WINDOW, HORIZON, MA = 300, 10, 3, 5
TARGET = "log_return"


def _params() -> Params:
    raw = {**TINY_PARAMS,
           "preprocess": {**TINY_PARAMS["preprocess"], "window": WINDOW, "target": TARGET},
           "train": {**TINY_PARAMS["train"], "units": [50, 50], "epochs": 2, "workers": 2}}
    return parse_params(raw)


PARAMS = _params()
CLOSE = synthetic_prices(dt.date(2021, 1, 1), dt.date(2021, 1, 1) + dt.timedelta(days=N))[
    "Close"].to_numpy(dtype=np.float64)
DATES = pd.date_range("2021-01-01", periods=N, freq="D")
PLAN = plan_folds(N, window=WINDOW, val_fraction=PARAMS.preprocess.val_fraction,
                  test_fraction=PARAMS.preprocess.test_fraction, folds=PARAMS.preprocess.folds,
                  target=TARGET)
FOLD_1, FOLD_2, LIVE = PLAN
# The last day fold_1's backtest rows read: its last scored origin's farthest target.
LAST_READ = min(FOLD_1.score_stop - 2 + HORIZON, N - 1)


def _changed(first: int, factor: float) -> np.ndarray:
    """CLOSE with every price from day `first` on moved (a different path, not a rescale)."""
    out = CLOSE.copy()
    wiggle = np.random.default_rng(first).normal(0, 0.05, N - first)
    out[first:] = out[first:] * factor * np.exp(wiggle)
    return out


SERIES = {
    "original": CLOSE,
    "after_last_read": _changed(LAST_READ + 1, 1.7),  # after everything fold_1 reads
    "after_cutoff": _changed(FOLD_1.cutoff, 0.6),  # fold_1 scores these, never trains on them
    "in_training": _changed(FOLD_1.train_end - 1, 1.0),  # the control: fold_1 learns from it
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """fold_1 on every series, fold_2 on the original, fitted side by side."""
    out = tmp_path_factory.mktemp("walk_forward")
    jobs, scalers = [], {}
    for name, close in SERIES.items():
        scaler, arrays = fold_arrays(close, FOLD_1, window=WINDOW, target=TARGET)
        scalers[f"fold_1@{name}"] = scaler
        jobs.append(FitJob(f"fold_1@{name}", PARAMS, arrays, str(out / f"fold_1@{name}.keras")))
    scaler, arrays = fold_arrays(CLOSE, FOLD_2, window=WINDOW, target=TARGET)
    scalers["fold_2@original"] = scaler
    jobs.append(FitJob("fold_2@original", PARAMS, arrays, str(out / "fold_2@original.keras")))
    epochs: list[tuple[str, int]] = []
    results = fit_all(jobs, workers=2, on_epoch=lambda e: epochs.append((e.name, e.epoch)))
    assert set(results) == {job.name for job in jobs}
    assert sorted(epochs) == sorted((job.name, e) for job in jobs
                                    for e in range(1, len(results[job.name].history["loss"]) + 1))
    return {"networks": {job.name: load_network(Path(job.out)) for job in jobs},
            "scalers": scalers, "results": results}


def _weights(net: Network) -> list[np.ndarray]:
    return [w for layer in net.lstms for w in (layer.kernel, layer.recurrent, layer.bias)] + [
        net.dense_kernel, net.dense_bias]


def _same_weights(a: Network, b: Network) -> bool:
    wa, wb = _weights(a), _weights(b)
    return len(wa) == len(wb) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in zip(wa, wb, strict=True))


def _model(trained: dict[str, Any], fold: Fold, key: str) -> FoldModel:
    return FoldModel(fold=fold, network=trained["networks"][key], scaler=trained["scalers"][key])


def _fold_rows(model: FoldModel, close: np.ndarray) -> pd.DataFrame:
    return fold_table(model, close=close, dates=DATES, target=TARGET, window=WINDOW,
                      horizon=HORIZON, ma_window=MA)


def test_the_plan_is_the_one_the_tests_assume() -> None:
    assert [f.name for f in PLAN] == ["fold_1", "fold_2", "live"]
    assert FOLD_1.cutoff < LAST_READ < N - 1  # something after fold_1's reads to change
    # The changes really start where their names say.
    for name, first in (("after_last_read", LAST_READ + 1), ("after_cutoff", FOLD_1.cutoff),
                        ("in_training", FOLD_1.train_end - 1)):
        diff = np.flatnonzero(SERIES[name] != CLOSE)
        assert diff[0] == first and diff[-1] == N - 1


def test_fold_1_learns_nothing_after_its_cutoff(trained: dict[str, Any]) -> None:
    nets = trained["networks"]
    for name in ("after_last_read", "after_cutoff"):
        assert trained["scalers"][f"fold_1@{name}"] == trained["scalers"]["fold_1@original"]
        assert _same_weights(nets[f"fold_1@{name}"], nets["fold_1@original"]), name
        assert (trained["results"][f"fold_1@{name}"].history
                == trained["results"]["fold_1@original"].history)
    # The control: a changed training day changes the weights, so the comparison can fail.
    assert not _same_weights(nets["fold_1@in_training"], nets["fold_1@original"])
    assert not _same_weights(nets["fold_2@original"], nets["fold_1@original"])


def test_fold_1s_backtest_rows_ignore_every_later_price(trained: dict[str, Any]) -> None:
    changed = SERIES["after_last_read"]
    before = _fold_rows(_model(trained, FOLD_1, "fold_1@original"), CLOSE)
    after = _fold_rows(_model(trained, FOLD_1, "fold_1@after_last_read"), changed)
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    assert before["date"].max() == DATES[LAST_READ]  # it does read up to LAST_READ
    assert set(before["split"]) == {"val", "test"}

    # In the whole walk-forward table too (fold_2 did not see the change either: its
    # cut-off is before it, so its original network is the one it would have trained).
    assert FOLD_2.cutoff <= LAST_READ + 1
    fold_2 = _model(trained, FOLD_2, "fold_2@original")
    table, _ = walk_forward_table([_model(trained, FOLD_1, "fold_1@original"), fold_2],
                                  close=CLOSE, dates=DATES, target=TARGET, window=WINDOW,
                                  horizon=HORIZON, ma_window=MA)
    table2, _ = walk_forward_table([_model(trained, FOLD_1, "fold_1@after_last_read"), fold_2],
                                   close=changed, dates=DATES, target=TARGET, window=WINDOW,
                                   horizon=HORIZON, ma_window=MA)
    rows, rows2 = (t[t["fold"] == "fold_1"].reset_index(drop=True) for t in (table, table2))
    pd.testing.assert_frame_equal(rows2, rows, check_exact=True)
    pd.testing.assert_frame_equal(rows, before, check_exact=True)
    # fold_2 scores the changed days: its rows differ (the check is not vacuous).
    assert not table[table["fold"] == "fold_2"].reset_index(drop=True).equals(
        table2[table2["fold"] == "fold_2"].reset_index(drop=True))


def test_a_price_after_the_cutoff_changes_fold_1s_scores_not_its_forecasts_before_it(
        trained: dict[str, Any]) -> None:
    changed = SERIES["after_cutoff"]
    before = _fold_rows(_model(trained, FOLD_1, "fold_1@original"), CLOSE)
    after = _fold_rows(_model(trained, FOLD_1, "fold_1@after_cutoff"), changed)
    # Its validation rows (all before the cut-off) are bit-identical ...
    pd.testing.assert_frame_equal(after[after["split"] == "val"], before[before["split"] == "val"],
                                  check_exact=True)
    # ... and so is the first scored origin's forecast, made the day before the cut-off;
    # the actuals it is scored against are the changed prices.
    first = before["origin"] == DATES[FOLD_1.cutoff - 1]
    np.testing.assert_array_equal(after.loc[first, "lstm"], before.loc[first, "lstm"])
    assert not np.array_equal(after.loc[first, "actual"], before.loc[first, "actual"])


def test_the_live_model_sees_the_last_day() -> None:
    assert LIVE.is_live and LIVE.cutoff == N
    scaler, arrays = fold_arrays(CLOSE, LIVE, window=WINDOW, target=TARGET)
    last = model_series(CLOSE, TARGET)[-1]
    assert arrays["y_val"][-1] == np.float32(scaler.transform(np.array([last]))[0])
    # and the newest input window ends the day before it
    scaled = scaler.transform(model_series(CLOSE, TARGET)).astype(np.float32)
    np.testing.assert_array_equal(arrays["x_val"][-1, :, 0], scaled[N - 1 - WINDOW: N - 1])
