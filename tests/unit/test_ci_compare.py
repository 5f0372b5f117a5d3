"""The reproduction check's comparison (.ci/compare_metrics.py): registry state is not a
result, every CSV cell is, and the first difference is named."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_metrics", ROOT / ".ci/compare_metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cm = _module()
EVALUATION = {"headline": {"skill_h1": 0.97, "param_count": 30651},
              "serving": {"served": "lstm", "skill_h1": 0.97, "champion": None,
                          "champion_skill_mean": None,
                          "reasons": ["1-day skill 0.970 < 1", "no champion LSTM to compare with"]}}
CSV = "date,forecast,lower_80\n2022-12-31,1313.25,1200.5\n2023-01-01,1344.0,1210.0\n"


def _run(base: Path) -> Path:
    for rel in cm.FILES:
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("evaluation.json"):
            path.write_text(json.dumps(EVALUATION))
        elif rel.endswith(".json"):
            path.write_text(json.dumps(EVALUATION["headline"]))
        else:
            path.write_text(CSV)
    return base


def test_the_champion_the_rerun_meets_is_not_a_difference(tmp_path: Path) -> None:
    first, second = _run(tmp_path / "a"), _run(tmp_path / "b")
    rerun = json.loads(json.dumps(EVALUATION))
    rerun["serving"].update(champion="version 1 (run b0a1e2bd)", champion_skill_mean=1.165)
    rerun["serving"]["reasons"][1] = "mean skill 1.165 vs the champion's 1.165: gain +0.000 ≥ 0"
    (second / "reports/ETH-USD/evaluation.json").write_text(json.dumps(rerun))
    assert cm.compare(first, second) == []
    assert cm.main([str(first), str(second)]) == 0
    rerun["serving"]["served"] = "naive"  # what is served is a result
    (second / "reports/ETH-USD/evaluation.json").write_text(json.dumps(rerun))
    assert cm.compare(first, second) == ["reports/ETH-USD/evaluation.json: serving.served: 'lstm' != 'naive'"]


@pytest.mark.parametrize("rel", ["reports/ETH-USD/forecast.csv", "reports/ETH-USD/plots/test_predictions.csv",
                                 "reports/ETH-USD/plots/training_history.csv"])
def test_a_csv_cell_off_by_more_than_1e9_is_the_first_difference(
        tmp_path: Path, rel: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = _run(tmp_path / "a"), _run(tmp_path / "b")
    (second / rel).write_text(CSV.replace("1344.0", str(1344.0 * (1 + 1e-12))))
    assert cm.compare(first, second) == []  # formatting noise
    (second / rel).write_text(CSV.replace("1344.0", str(1344.0 * (1 + 1e-8))).replace("1210.0", "1211"))
    assert cm.main([str(first), str(second)]) == 1
    err = capsys.readouterr().err
    assert f"first difference: {rel}: row 2 (2023-01-01), column forecast: '1344.0' != " in err
    assert "2 difference(s)" in err


def test_a_missing_file_or_row_is_a_difference(tmp_path: Path) -> None:
    first, second = _run(tmp_path / "a"), _run(tmp_path / "b")
    (second / "reports/ETH-USD/plots/backtest_by_horizon.csv").write_text(CSV.rsplit("2023", 1)[0])
    (second / "reports/ETH-USD/plots/test_horizon_forecasts.csv").unlink()
    problems = cm.compare(first, second)
    assert problems[0] == "reports/ETH-USD/plots/backtest_by_horizon.csv: rows: 2 != 1"
    assert problems[1].startswith("reports/ETH-USD/plots/test_horizon_forecasts.csv: missing ")
