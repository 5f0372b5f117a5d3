"""The stage contracts: what evaluate and train write, forecast and the report read back as
the same typed model; another schema version or a damaged file is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.errors import ArtifactError
from crypto_forecast.evaluation.gate import Champion
from crypto_forecast.evaluation.scoring import evaluate
from crypto_forecast.io.contracts import EvaluationReport, TrainInfo
from tests.helpers import fold_models


def _report() -> EvaluationReport:
    rng = np.random.default_rng(3)
    close = 500 * np.exp(np.cumsum(rng.normal(0, 0.02, 260)))
    return evaluate(models=fold_models(close, window=8), close=close,
                    dates=pd.date_range("2021-01-01", periods=260, freq="D"), target="price",
                    window=8, horizon=3, ma_window=4, levels=(0.8, 0.95), volatility_days=5,
                    param_count=77, champion=Champion("version 1 (run 0a1b2c3d)", 0.99)).report


def test_round_trip_gives_the_same_model(tmp_path: Path) -> None:
    report = _report()
    path = tmp_path / "evaluation.json"
    report.write(path)
    back = EvaluationReport.read(path, "evaluate")
    assert back == report
    assert json.loads(path.read_text())["schema_version"] == EvaluationReport.SCHEMA_VERSION
    assert back.at(3).skill_rmse == report.horizons[2].skill_rmse
    assert [f.name for f in back.folds] == ["fold_1", "fold_2"]
    assert back.serving.champion == "version 1 (run 0a1b2c3d)"
    assert back.headline.interval_skill == report.headline.interval_skill


def test_another_schema_version_names_the_stage_to_rerun(tmp_path: Path) -> None:
    path = tmp_path / "evaluation.json"
    data = json.loads(_report().to_json())
    data["schema_version"] = EvaluationReport.SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    version = EvaluationReport.SCHEMA_VERSION
    with pytest.raises(ArtifactError, match=rf"schema version {version + 1}, this code reads "
                                            rf"version {version} .*`dvc repro -f evaluate`"):
        EvaluationReport.read(path, "evaluate")
    # The single-split report (version 1, no folds) is refused before it is validated.
    data["schema_version"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"schema version 1, this code reads version 2"):
        EvaluationReport.read(path, "evaluate")
    # The metrics.json of the old layout (no version at all) is refused the same way.
    path.write_text(json.dumps({"test": {}, "backtest": {}, "intervals": {}}))
    with pytest.raises(ArtifactError, match="schema version None"):
        EvaluationReport.read(path, "evaluate")


@pytest.mark.parametrize(("damage", "where"), [
    (lambda d: d["bands"][0].pop("nominal"), "bands.0.nominal"),
    (lambda d: d["horizons"][1]["lstm"].update(rmse="fast"), "horizons.1.lstm.rmse"),
    (lambda d: d["headline"].update(surprise=1), "headline.surprise"),
    (lambda d: d["folds"][1].pop("skill"), "folds.1.skill"),
    (lambda d: d["bands"][1].update(interval_score="wide"), "bands.1.interval_score"),
    (lambda d: d["serving"].pop("champion_skill_mean"), "serving.champion_skill_mean"),
])
def test_a_damaged_file_says_where_and_how_to_restore(tmp_path: Path, damage, where) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "evaluation.json"
    data = json.loads(_report().to_json())
    damage(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=rf"damaged \({where}: .*`dvc checkout`"):
        EvaluationReport.read(path, "evaluate")


def test_truncated_and_missing_files_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "evaluation.json"
    path.write_text(_report().to_json()[:200])
    with pytest.raises(ArtifactError, match=r"unreadable .*`dvc repro -f evaluate`"):
        EvaluationReport.read(path, "evaluate")
    with pytest.raises(ArtifactError, match=r"missing — run `dvc repro evaluate` first"):
        EvaluationReport.read(tmp_path / "absent.json", "evaluate")


def test_nan_is_refused_and_null_is_kept() -> None:
    report = _report()
    with pytest.raises(ValueError, match="finite"):
        report.at(1).lstm.model_validate({**report.at(1).lstm.model_dump(), "rmse": float("nan")})
    assert report.at(1).persistence.direction is None
    assert '"direction": null' in report.to_json()


# --- models/ETH-USD/train_info.json (version 2: the live model and every fold's) ---------------------

def _trained(name: str, cutoff: str | None) -> dict[str, object]:
    return {"name": name, "path": f"models/ETH-USD/folds/{name}.keras", "run_id": "a" * 32,
            "train_first": "2021-01-09", "train_last": "2021-07-01", "val_first": "2021-07-02",
            "val_last": "2021-08-20", "cutoff": cutoff, "scaler_min": 300.0,
            "scaler_max": 900.0, "epochs_run": 3, "best_epoch": 2, "best_val_loss": 0.01,
            "train_seconds": 1.5}


def _train_info() -> dict[str, object]:
    return {"schema_version": TrainInfo.SCHEMA_VERSION, "run_id": "b" * 32,
            "experiment_id": "1", "param_count": 30651, "epochs_run": 3, "best_epoch": 2,
            "best_val_loss": 0.01, "train_seconds": 4.0, "units": [50, 50], "window": 10,
            "target": "log_return", "registered_model": "crypto-forecast-ETH-USD",
            "model_version": 4, "live": _trained("live", None),
            "folds": [_trained("fold_1", "2021-08-21"), _trained("fold_2", "2021-09-20")]}


def test_train_info_round_trips_with_the_live_model_and_its_folds(tmp_path: Path) -> None:
    path = tmp_path / "train_info.json"
    path.write_text(json.dumps(_train_info()))
    info = TrainInfo.read(path, "train")
    assert info.live.name == "live" and info.live.cutoff is None
    assert [f.name for f in info.folds] == ["fold_1", "fold_2"]
    assert info.folds[1].cutoff == "2021-09-20" and info.units == (50, 50)
    info.write(tmp_path / "again.json")
    assert TrainInfo.read(tmp_path / "again.json", "train") == info


@pytest.mark.parametrize(("damage", "where"), [
    (lambda d: d.update(folds=[]), "folds"),  # at least one walk-forward fold
    (lambda d: d["folds"][0].update(name="fold_x"), "folds.0.name"),
    (lambda d: d["live"].update(name="champion"), "live.name"),
    (lambda d: d["live"].update(run_id="not-a-run"), "live.run_id"),
    (lambda d: d["folds"][1].update(best_val_loss=float("nan")), "folds.1.best_val_loss"),
    (lambda d: d.pop("live"), "live"),
])
def test_a_damaged_train_info_says_where(tmp_path: Path, damage, where) -> None:  # type: ignore[no-untyped-def]
    data = _train_info()
    damage(data)
    path = tmp_path / "train_info.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=rf"damaged \({where}: .*`dvc repro -f train`"):
        TrainInfo.read(path, "train")


def test_a_single_split_train_info_is_refused_by_version(tmp_path: Path) -> None:
    data = _train_info()
    data["schema_version"] = 1
    del data["live"], data["folds"]
    path = tmp_path / "train_info.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"schema version 1, this code reads version 2 .*"
                                            r"`dvc repro -f train`"):
        TrainInfo.read(path, "train")
