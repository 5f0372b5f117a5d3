"""The evaluation contract: what evaluate writes, forecast and the report read back as the
same typed model; another schema version or a damaged file is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.series import split_and_scale
from crypto_forecast.errors import ArtifactError
from crypto_forecast.evaluation.scoring import evaluate
from crypto_forecast.io.contracts import EvaluationReport


def _report() -> EvaluationReport:
    rng = np.random.default_rng(3)
    close = pd.Series(500 * np.exp(np.cumsum(rng.normal(0, 0.02, 260))),
                      index=pd.date_range("2021-01-01", periods=260, freq="D"))
    frame, scaler, _ = split_and_scale(close, 8, 0.2, 0.2, "price")
    return evaluate(model=lambda x: x[:, -1, 0], series=frame, scaler=scaler, target="price",
                    window=8, horizon=3, ma_window=4, levels=(0.8, 0.95), volatility_days=5,
                    param_count=77).report


def test_round_trip_gives_the_same_model(tmp_path: Path) -> None:
    report = _report()
    path = tmp_path / "evaluation.json"
    report.write(path)
    back = EvaluationReport.read(path, "evaluate")
    assert back == report
    assert json.loads(path.read_text())["schema_version"] == EvaluationReport.SCHEMA_VERSION
    assert back.at(3).skill_rmse == report.horizons[2].skill_rmse


def test_another_schema_version_names_the_stage_to_rerun(tmp_path: Path) -> None:
    path = tmp_path / "evaluation.json"
    data = json.loads(_report().to_json())
    data["schema_version"] = EvaluationReport.SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"schema version 2, this code reads version 1 .*"
                                            r"`dvc repro -f evaluate`"):
        EvaluationReport.read(path, "evaluate")
    # The metrics.json of the old layout (no version at all) is refused the same way.
    path.write_text(json.dumps({"test": {}, "backtest": {}, "intervals": {}}))
    with pytest.raises(ArtifactError, match="schema version None"):
        EvaluationReport.read(path, "evaluate")


@pytest.mark.parametrize(("damage", "where"), [
    (lambda d: d["bands"][0].pop("nominal"), "bands.0.nominal"),
    (lambda d: d["horizons"][1]["lstm"].update(rmse="fast"), "horizons.1.lstm.rmse"),
    (lambda d: d["headline"].update(surprise=1), "headline.surprise"),
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
