"""The report's verdict is computed from the numbers, and the HTML stands alone."""

from __future__ import annotations

import base64

import pandas as pd
import pytest

from crypto_forecast.evaluation.scoring import headline
from crypto_forecast.io.contracts import (
    BacktestSetup,
    BandAtHorizon,
    BandCalibration,
    EvaluationReport,
    FoldScores,
    HorizonScores,
    PredictorScores,
    ScoredPeriod,
    ServingDecision,
    TrainedModel,
)
from crypto_forecast.report.render import ReportContext, render_html, render_markdown, verdict


def _metrics(skills: list[float], mases: list[float], cover80: float = 0.8,
             cover95: float = 0.95) -> EvaluationReport:
    def scores(horizon: int | None, skill: float, mase: float) -> HorizonScores:
        def p(rmse: float, mase: float, direction: float | None) -> PredictorScores:
            return PredictorScores(rmse=rmse, mae=rmse, mape=1.0, smape=1.0, mase=mase,
                                   direction=direction)
        return HorizonScores(horizon=horizon, lstm=p(10 * skill, mase, 0.5),
                             persistence=p(10.0, 1.0, None), drift=p(11.0, 1.1, 0.5),
                             moving_average=p(12.0, 1.2, 0.4), skill_rmse=skill)

    horizons = [scores(h, s, m) for h, (s, m) in enumerate(zip(skills, mases, strict=True), 1)]
    bands = [BandCalibration(nominal=nominal, volatility_days=30, coverage=cov, horizons=[
        BandAtHorizon(horizon=h, score_quantile=0.05, coverage=cov, half_width_pct=5.1)
        for h in range(1, len(skills) + 1)], interval_score=40.0, pinball=2.0,
        naive_coverage=nominal, naive_interval_score=50.0, naive_pinball=2.5)
        for nominal, cov in ((0.8, cover80), (0.95, cover95))]
    folds = [FoldScores(name=f"fold_{k}", cutoff=f"2023-0{k}-01", last=f"2023-0{k}-28",
                        origins=28, skill=[s + 0.01 * k for s in skills],
                        coverage={"80": cover80, "95": cover95},
                        interval_skill={"80": 0.8, "95": 0.9}) for k in (1, 2)]
    period = ScoredPeriod(first="2022-10-18", last="2023-12-31", days=440)
    return EvaluationReport(
        target="price",
        headline=headline(horizons=horizons, bands=bands, period=period, param_count=30651),
        test_period=period,
        backtest=BacktestSetup(horizon=len(skills), folds=2, origins=400,
                               calibration_origins=200, mase_scale=10.0, drift_per_day=0.5,
                               ma_window=7),
        horizons=horizons, pooled=scores(None, skills[0], mases[0]), folds=folds, bands=bands,
        serving=ServingDecision(served="naive" if skills[0] >= 1 else "lstm",
                                reasons=[f"1-day skill {skills[0]:.3f}"], skill_h1=skills[0],
                                skill_mean=sum(skills) / len(skills), best_baseline_h1="persistence",
                                max_skill_h1=1.0, max_skill_mean=1.0, min_gain_vs_champion=0.0,
                                champion=None, champion_skill_mean=None,
                                naive_quantiles={"80": [0.04] * len(skills),
                                                 "95": [0.06] * len(skills)}))


LIVE = TrainedModel(name="live", path="models/ETH-USD/model.keras", run_id="0" * 32,
                    train_first="2018-03-01", train_last="2023-06-14", val_first="2023-06-15",
                    val_last="2023-12-31", cutoff=None, scaler_min=-0.2, scaler_max=0.2,
                    epochs_run=9, best_epoch=4, best_val_loss=0.01, train_seconds=3.0)


def test_losing_to_persistence_says_no_better_than_todays_price() -> None:
    text = verdict(_metrics([1.6, 1.2, 1.1], [1.3, 1.5, 1.8], cover80=0.7, cover95=0.99))
    assert text.startswith("Walk-forward over 2022-10-18 .. 2023-12-31 (2 cut-offs, each model "
                           "retrained on the days before its own), the LSTM's 1-day error (RMSE) "
                           "is 1.60× persistence's; treat this forecast as no better than today's "
                           "price ± the band.")
    assert "beats persistence at 0 of 3 horizons; at 3 days its error is 1.10×" in text
    assert "MASE is above 1 from 1 day ahead (at 3: 1.80)" in text
    assert "80% band held 70% of outcomes (too narrow" in text
    assert "95% band held 99% of outcomes (wider than needed)" in text


def test_a_tie_is_called_a_tie() -> None:
    text = verdict(_metrics([1.01, 0.99], [0.8, 0.9]))
    assert "1.01× persistence's, a tie" in text
    assert "at 1 of 2 horizons (h = 2)" in text
    assert "MASE is at most 0.90 at every horizon" in text
    assert "(calibrated)" in text and "too narrow" not in text


def test_a_real_edge_is_quantified() -> None:
    text = verdict(_metrics([0.9, 0.95, 0.97], [0.5, 0.7, 1.2]))
    assert "0.90× persistence's, 10% lower" in text
    assert "beats persistence at 3 of 3 horizons;" in text
    assert "MASE is above 1 from 3 days ahead" in text


def test_reports_carry_banner_table_and_embedded_chart() -> None:
    metrics = _metrics([1.2, 1.1], [1.0, 1.1])
    days = pd.date_range("2024-01-01", periods=2, freq="D", name="date")
    fc = pd.DataFrame({"forecast": [100.0, 101.0], "lower_80": [95.0, 94.0],
                       "upper_80": [105.0, 108.0], "lower_95": [90.0, 89.0],
                       "upper_95": [110.0, 113.0]}, index=days)
    ctx = ReportContext(ticker="ETH-USD", source_used="synthetic", data_first="2018-01-01",
                        data_last="2023-12-31", days=2191, sha256="ab" * 32, run_id="r123",
                        param_count=30651, units="[50, 50]", window=60, target="price",
                        git_commit="c0ffee", history_days=120, live=LIVE)
    md = render_markdown(ctx, metrics, fc, "forecast.png")
    assert md.startswith("> **SYNTHETIC DATA")
    assert "| 2024-01-01 | 100.00 | 95.00 .. 105.00 | 90.00 .. 110.00 |" in md
    assert "r123" in md and "c0ffee" in md and "30,651" in md
    assert "| all |" in md and "| LSTM RMSE |" in md
    assert "30 days' volatility" in md
    # The walk-forward table: a row per fold and the pooled one, and the live model's days.
    assert "| fold_1 | 2023-01-01 | 2023-01-28 | 28 | 1.210 | 1.110 |" in md
    assert "| pooled | 2022-10-18 | 2023-12-31 | 400 | 1.200 | 1.100 |" in md
    assert "| 80% | LSTM | 80.0 | 40.00 | 2.00 |" in md
    assert ("Live model (the one forecasting): trained on 2018-03-01 .. 2023-06-14, stopped "
            "early on 2023-06-15 .. 2023-12-31") in md
    # skill 1.2 at 1 day: the naive forecast is served, said at the top, the LSTM's beside it.
    assert md.index("## What is served and why") < md.index("**Verdict.**")
    assert "Served: the naive forecast: persistence" in md and "1-day skill 1.200" in md
    with_lstm = fc.assign(lstm_forecast=[102.5, 104.0])
    md2 = render_markdown(ctx, metrics, with_lstm, "forecast.png")
    assert "| LSTM's forecast (not served) |" in md2 and "| 90.00 .. 110.00 | 102.50 |" in md2
    png = b"\x89PNGfake"
    html = render_html(ctx, metrics, fc, png)
    assert "data:image/png;base64," + base64.b64encode(png).decode() in html
    assert "SYNTHETIC DATA" in html and "<table>" in html and "src=\"http" not in html
    real = render_markdown(ReportContext(**{**ctx.__dict__, "source_used": "csv"}), metrics, fc, "x.png")
    assert "SYNTHETIC" not in real


def test_an_undefined_skill_is_said_in_words() -> None:
    report = _metrics([1.0, 1.0], [1.0, 1.0])
    flat = report.model_copy(update={"horizons": [h.model_copy(update={"skill_rmse": None})
                                                  for h in report.horizons]})
    text = verdict(flat)
    assert "cannot be compared with persistence's, which is zero" in text
    md = render_markdown(ReportContext(
        ticker="X", source_used="csv", data_first="a", data_last="b", days=1, sha256="",
        run_id="r", param_count=1, units="[1]", window=1, target="price", git_commit="c",
        history_days=1, live=LIVE), flat, pd.DataFrame({"forecast": [1.0]}, index=pd.DatetimeIndex(
            ["2024-01-01"], name="date")).assign(lower_80=0.5, upper_80=1.5, lower_95=0.4,
                                                 upper_95=1.6), "x.png")
    assert "| 1 | 10.00 | 10.00 | 11.00 | 12.00 | – |" in md


@pytest.mark.parametrize("skill", [1.03, 5.0])
def test_any_loss_beyond_the_tie_band_is_no_better(skill: float) -> None:
    assert "no better than today's price" in verdict(_metrics([skill], [2.0]))
