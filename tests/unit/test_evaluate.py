"""The evaluate stage's pure part, walk-forward: the long backtest table over every fold's
validation and scored origins, the scores computed from it (pooled and per fold), the
typed report, metrics.json's headline, the plot tables and the gate's choice."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.folds import Fold
from crypto_forecast.data.series import MinMaxScaler
from crypto_forecast.errors import DataError
from crypto_forecast.evaluation.backtest import PREDICTORS
from crypto_forecast.evaluation.gate import Champion, GateThresholds
from crypto_forecast.evaluation.intervals import conformal_quantile, log_ratio_scores
from crypto_forecast.evaluation.metrics import SCORE_KEYS, mase, rmse
from crypto_forecast.evaluation.scoring import (
    Evaluation,
    evaluate,
    evaluate_table,
    mlflow_metrics,
    table_metrics,
)
from crypto_forecast.evaluation.walk_forward import FoldModel
from tests.helpers import fold_models

WINDOW = 10


def _close(n: int = 300, flat: bool = False) -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(11)
    values = 1000 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    if flat:  # prices stop moving from mid-history on: every scored day is constant
        values[n // 2:] = values[n // 2]
    return values, pd.date_range("2020-01-01", periods=n, freq="D")


def _run(close: np.ndarray, dates: pd.DatetimeIndex, models: list[FoldModel] | None = None,
         target: str = "price", **kwargs: Any) -> Evaluation:
    options: dict[str, Any] = {"horizon": 4, "ma_window": 5, "levels": (0.8,)} | kwargs
    return evaluate(models=models if models is not None else fold_models(close),
                    close=close, dates=dates, target=target, window=WINDOW,  # type: ignore[arg-type]
                    **options)


def _folds(models: list[FoldModel]) -> list[Fold]:
    return [m.fold for m in models if not m.fold.is_live]


def test_the_long_table_has_a_row_per_origin_and_horizon_inside_each_fold_and_split() -> None:
    close, dates = _close()
    models = fold_models(close)
    table = _run(close, dates, models).table
    assert list(table.columns) == ["origin", "horizon", "date", "actual", *PREDICTORS, "split",
                                   "fold"]
    assert table["fold"].unique().tolist() == ["fold_1", "fold_2", "live"]
    assert set(table[table["fold"] == "live"]["split"]) == {"val"}  # the live model scores nothing
    n = close.size
    for model in models:
        fold = model.fold
        rows = table[table["fold"] == fold.name]
        val = rows[rows["split"] == "val"]
        n_val = fold.cutoff - fold.train_end
        # validation targets stay inside [train_end, cutoff): h days ahead, n_val - (h - 1) rows
        assert val.groupby("horizon").size().tolist() == [n_val - h for h in range(4)]
        assert val["date"].min() == dates[fold.train_end] and val["date"].max() == dates[fold.cutoff - 1]
        if fold.is_live:
            continue
        test = rows[rows["split"] == "test"]
        # origins from the day before the cut-off to the day before the next one
        assert test["origin"].min() == dates[fold.cutoff - 1]
        assert test["origin"].nunique() == fold.score_stop - fold.cutoff
        expected = [min(fold.score_stop - fold.cutoff, n - fold.cutoff - h) for h in range(4)]
        assert test.groupby("horizon").size().tolist() == expected
    test = table[table["split"] == "test"]
    assert ((test["date"] - test["origin"]).dt.days == test["horizon"]).all()
    by_date = pd.Series(close, index=dates)
    np.testing.assert_allclose(test["actual"], by_date.loc[test["date"]].to_numpy())
    np.testing.assert_allclose(test["persistence"], by_date.loc[test["origin"]].to_numpy())
    assert test["date"].max() == dates[-1]  # never beyond the data
    # The scored blocks tile the walk-forward part: each 1-day target scored exactly once.
    one = test[test["horizon"] == 1]
    assert one["date"].is_unique and one["date"].min() == dates[_folds(models)[0].cutoff]


def test_scores_come_from_the_table_like_utilsforecast_evaluate() -> None:
    close, dates = _close()
    result = _run(close, dates, horizon=3)
    scores = result.scores
    assert list(scores.columns) == ["horizon", "metric", *PREDICTORS]
    test = result.table[result.table["split"] == "test"]  # every fold's scored rows, pooled
    at2 = test[test["horizon"] == 2]
    row = scores[(scores["horizon"] == 2) & (scores["metric"] == "rmse")].iloc[0]
    assert row["drift"] == rmse(at2["actual"], at2["drift"])
    assert result.report.at(2).drift.rmse == row["drift"]
    pooled = scores[scores["horizon"].isna() & (scores["metric"] == "mae")].iloc[0]
    assert pooled["lstm"] == pytest.approx(np.mean(np.abs(test["actual"] - test["lstm"])))
    assert tuple(table_metrics(mase_scale=1.0)) == SCORE_KEYS
    custom = evaluate_table(test, metrics={"bias": lambda a, p, r: float(np.mean(p - a))},
                            predictors=("persistence",))
    assert custom["metric"].unique().tolist() == ["bias"] and len(custom) == 3


def test_each_folds_scores_come_from_its_own_rows() -> None:
    close, dates = _close()
    models = fold_models(close)
    # fold_2's network forecasts 2 % too high: only its own scores may show it.
    scaler = models[1].scaler

    def high(x: np.ndarray) -> np.ndarray:
        return np.asarray(scaler.transform(scaler.inverse(x[:, -1, 0]) * 1.02), np.float32)

    models[1] = FoldModel(models[1].fold, high, scaler)
    result = _run(close, dates, models, horizon=3)
    fold_1, fold_2 = result.report.folds
    assert [fold_1.name, fold_2.name] == ["fold_1", "fold_2"]
    assert fold_1.skill == pytest.approx([1.0] * 3, rel=1e-6)
    assert all(s is not None and s > 1.05 for s in fold_2.skill)
    test = result.table[(result.table["split"] == "test") & (result.table["fold"] == "fold_2")]
    at1 = test[test["horizon"] == 1]
    assert fold_2.skill[0] == pytest.approx(rmse(at1["actual"], at1["lstm"])
                                            / rmse(at1["actual"], at1["persistence"]))
    f2 = models[1].fold
    assert fold_2.cutoff == str(dates[f2.cutoff].date())
    assert fold_2.last == str(dates[f2.score_stop - 1].date())
    assert fold_2.origins == f2.score_stop - f2.cutoff
    assert list(result.by_horizon["skill_fold_2"]) == fold_2.skill
    # pooled skill lies between the folds'
    assert fold_1.skill[0] < result.report.at(1).skill_rmse < fold_2.skill[0]  # type: ignore[operator]


def test_a_persistence_network_scores_skill_one_everywhere() -> None:
    close, dates = _close()
    models = fold_models(close)
    result = _run(close, dates, models, levels=(0.8, 0.95), param_count=123)
    report = result.report
    n_test = sum(f.score_stop - f.cutoff for f in _folds(models))
    live = models[-1].fold
    assert report.backtest.horizon == 4 and report.backtest.origins == n_test
    assert report.backtest.folds == 2
    assert report.backtest.calibration_origins == live.cutoff - live.train_end
    for scores in (*report.horizons, report.pooled):
        assert scores.skill_rmse == pytest.approx(1.0)
        assert scores.persistence.direction is None  # flat: no direction, JSON null
    assert [s.horizon for s in report.horizons] == [1, 2, 3, 4] and report.pooled.horizon is None
    assert report.test_period.days == n_test
    assert report.test_period.first == str(dates[models[0].fold.cutoff].date())
    assert report.test_period.last == str(dates[-1].date())
    assert [f.name for f in report.folds] == ["fold_1", "fold_2"]
    for fold in report.folds:
        assert fold.skill == pytest.approx([1.0] * 4)
        assert fold.interval_skill["80"] == pytest.approx(1.0, rel=1e-4)  # the same bands
    for b, nominal in zip(report.bands, (0.8, 0.95), strict=True):
        assert b.nominal == nominal and b.name == str(round(nominal * 100))
        assert 0 <= b.coverage <= 1 and b.volatility_days == 0
        assert b.coverage == pytest.approx(b.naive_coverage)
        assert b.interval_score == pytest.approx(b.naive_interval_score, rel=1e-4)
        assert b.pinball is not None and b.pinball > 0
        widths = [h.score_quantile for h in b.horizons]
        assert widths[-1] > widths[0]  # random-walk errors grow with the horizon
    assert report.bands[1].horizons[0].score_quantile > report.bands[0].horizons[0].score_quantile

    head = report.headline.metrics_file()
    assert list(head) == ["skill_h1", "skill_h4", "rmse_h1", "coverage_80",
                          "coverage_95", "param_count", "test_first", "test_last"]
    assert head["rmse_h1"] == report.at(1).lstm.rmse and head["param_count"] == 123
    assert head["skill_h4"] == report.at(4).skill_rmse
    assert head["test_first"] == report.test_period.first
    json.dumps(report.model_dump(mode="json"), allow_nan=False)  # valid JSON: no NaN anywhere

    flat = mlflow_metrics(report.headline)
    assert set(flat) == {k for k in head if k not in ("test_first", "test_last")} | {
        "mae_h1", "mase_h1", "interval_skill_80", "interval_skill_95"}
    assert flat["interval_skill_80"] == pytest.approx(1.0, rel=1e-4)  # the same bands
    assert len(flat) <= 12

    assert list(result.by_horizon["horizon"]) == [1, 2, 3, 4]
    assert {"lstm_rmse", "persistence_mase", "coverage_80", "nominal_95", "skill_fold_1",
            "skill_fold_2"} <= set(result.by_horizon)
    assert list(result.one_step.columns) == ["actual", *PREDICTORS]
    view = result.horizon_view
    assert len(view) == n_test - 3
    np.testing.assert_allclose(view["lstm_h_days_ahead"], view["persistence_h_days_ahead"])
    assert (view["lower_95"] <= view["lower_80"]).all() and (view["upper_80"] <= view["upper_95"]).all()


def test_the_served_bands_come_from_the_live_models_validation_slice() -> None:
    close, dates = _close()
    result = _run(close, dates, horizon=3, levels=(0.8,))
    live = result.table[result.table["fold"] == "live"]
    (b,) = result.report.bands
    for h in (1, 2, 3):
        at = live[live["horizon"] == h]
        assert b.horizons[h - 1].score_quantile == pytest.approx(
            conformal_quantile(log_ratio_scores(at["actual"], at["lstm"]), 0.8))
        assert result.report.serving.naive_quantiles["80"][h - 1] == pytest.approx(
            conformal_quantile(log_ratio_scores(at["actual"], at["persistence"]), 0.8))


def test_constant_prices_give_undefined_skill_not_a_crash() -> None:
    close, dates = _close(flat=True)
    result = _run(close, dates, horizon=3)
    head = result.report.headline
    assert head.skill_h1 is None and head.skill_hmax is None
    assert head.rmse_h1 is not None and head.rmse_h1 < 1e-3  # float32 round trip
    assert all(s is None for f in result.report.folds for s in f.skill)
    assert result.report.serving.skill_h1 is None and result.report.serving.served == "naive"
    text = json.dumps(head.metrics_file(), allow_nan=False)
    assert '"skill_h1": null' in text
    flat = mlflow_metrics(head)
    assert "skill_h1" not in flat and "skill_h3" not in flat and "rmse_h1" in flat
    assert all(math.isfinite(v) for v in flat.values())
    result.report.to_json()  # the whole report is valid JSON too
    assert math.isnan(mase([1.0, 2.0], [1.5, 2.5], 0.0))  # a zero MASE scale: undefined


def test_log_return_target_runs_the_same_way() -> None:
    close, dates = _close()

    def no_move(scaler: Any) -> Any:  # a zero log return, in each fold's own scaled units
        zero = np.float32(scaler.transform(np.array([0.0]))[0])
        return lambda x: np.full(x.shape[0], zero)

    models = fold_models(close, target="log_return", network=no_move)
    for m in models:  # a scaler per fold, fitted on its own training days' log returns
        assert m.scaler == MinMaxScaler.fit(np.diff(np.log(close[: m.fold.train_end])))
    result = _run(close, dates, models, target="log_return", horizon=3)
    assert result.report.at(3).skill_rmse == pytest.approx(1.0)
    assert result.report.target == "log_return"


def test_a_horizon_longer_than_one_folds_scored_block_is_refused() -> None:
    close, dates = _close(n=120)
    models = fold_models(close)
    block = models[0].fold.score_stop - models[0].fold.cutoff
    assert block == 12  # 24 scored days in all: the check is per fold, not pooled
    with pytest.raises(DataError, match=r"fold_1 has 12 test origins, fewer than "
                                        r"evaluate\.horizon=13 — lower evaluate\.horizon"):
        _run(close, dates, models, horizon=block + 1)
    _run(close, dates, models, horizon=block)  # a full block is enough


def test_volatility_scaled_bands_are_recorded_and_rebuilt_by_the_forecasters() -> None:
    from crypto_forecast.io.contracts import TrainedModel
    from crypto_forecast.serving.build import pipeline_forecasters, recent_closes
    from tests.helpers import random_network

    close, dates = _close()
    models = fold_models(close)
    result = _run(close, dates, models, horizon=3, volatility_days=10)
    (b,) = result.report.bands
    assert b.volatility_days == 10 and 0 < b.coverage <= 1
    live_fold, scaler = models[-1].fold, models[-1].scaler
    live = TrainedModel(
        name="live", path="models/ETH-USD/model.keras", run_id="0" * 32,
        train_first=str(dates[WINDOW].date()), train_last=str(dates[live_fold.train_end - 1].date()),
        val_first=str(dates[live_fold.train_end].date()),
        val_last=str(dates[live_fold.cutoff - 1].date()), cutoff=None,
        scaler_min=scaler.data_min, scaler_max=scaler.data_max, epochs_run=1, best_epoch=1,
        best_val_loss=0.0, train_seconds=0.0)
    forecasters = pipeline_forecasters(network=random_network((4, 4)), live=live,
                                       report=result.report, ticker="ETH-USD", window=WINDOW,
                                       target="price", data_sha256="")
    spec = forecasters["lstm"].spec
    # the live model's scaler and days, not a fold's
    assert (spec.scaler_min, spec.scaler_max) == (scaler.data_min, scaler.data_max)
    assert (spec.data_first, spec.data_last) == (live.train_first, str(dates[-1].date()))
    assert spec.horizon == 3 and spec.volatility_days == 10
    series = pd.DataFrame({"close": close}, index=dates)
    sigma = np.std(np.diff(np.log(close))[-10:], ddof=1)
    lstm = forecasters["lstm"].forecast(recent_closes(series))
    np.testing.assert_allclose(np.log(lstm["upper_80"] / lstm["forecast"]),
                               sigma * np.array([h.score_quantile for h in b.horizons]))
    naive = forecasters["naive"].forecast(recent_closes(series))
    assert (naive["forecast"] == close[-1]).all()
    np.testing.assert_allclose(np.log(naive["upper_80"] / naive["forecast"]),
                               sigma * np.array(result.report.serving.naive_quantiles["80"]))


def test_the_gate_serves_the_naive_forecast_when_the_lstm_does_not_beat_it() -> None:
    close, dates = _close()
    models = fold_models(close)
    # The persistence network ties persistence: skill 1 against the best baseline (here
    # persistence itself), which is not below 1.
    tie = _run(close, dates, models, horizon=3).report
    serving = tie.serving
    assert serving.served == "naive" and serving.best_baseline_h1 == "persistence"
    assert serving.skill_h1 == pytest.approx(1.0)
    assert serving.skill_mean == pytest.approx(1.0)
    assert "1-day skill 1.000 is not below 1" in serving.reasons
    assert serving.champion is None and "no champion LSTM to compare with" in serving.reasons
    lenient = GateThresholds(max_skill_h1=1.5, max_skill_mean=1.5)
    passed = _run(close, dates, models, horizon=3, gate=lenient).report.serving
    assert passed.served == "lstm" and passed.max_skill_h1 == 1.5
    # The champion, scored on the same origins, must still be beaten.
    better = Champion(label="version 3 (run 0a1b2c3d)", skill_mean=0.9)
    kept = _run(close, dates, models, horizon=3, gate=lenient, champion=better).report.serving
    assert kept.served == "naive"
    assert kept.champion == "version 3 (run 0a1b2c3d)" and kept.champion_skill_mean == 0.9
    worse = Champion(label="version 2 (run 00ff00ff)", skill_mean=1.2)
    beaten = _run(close, dates, models, horizon=3, gate=lenient, champion=worse).report.serving
    assert beaten.served == "lstm" and beaten.champion_skill_mean == 1.2
