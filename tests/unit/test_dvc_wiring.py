"""dvc.yaml agrees with the code: module deps, params sections, and artifact paths."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto_forecast.io import paths
from tests.helpers import ROOT

STAGES = ("download", "preprocess", "train", "evaluate", "forecast")
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


OWN_PACKAGES = ("stages", "crypto_forecast")


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _imports(module: str, seen: set[str] | None = None) -> set[str]:
    """The project's own source files that importing `module` executes, transitively (lazy
    imports and every enclosing package's `__init__.py` included)."""
    seen = set() if seen is None else seen
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        path = _module_file(name)
        if path is None or str(path.relative_to(ROOT)) in seen:
            continue
        seen.add(str(path.relative_to(ROOT)))
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(OWN_PACKAGES):
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith(OWN_PACKAGES)]
            for imported in names:
                if _module_file(imported) is not None:
                    _imports(imported, seen)
    return seen


def _stage(name: str) -> dict[str, Any]:
    stage: dict[str, Any] = DVC["stages"][name]
    return stage


def _entries(items: list[Any]) -> list[str]:
    return [next(iter(i)) if isinstance(i, dict) else i for i in items]


@pytest.mark.parametrize("name", STAGES)
def test_stage_runs_its_module(name: str) -> None:
    assert _stage(name)["cmd"] == f"python -m stages.{name}"


@pytest.mark.parametrize("name", STAGES)
def test_deps_list_every_imported_module(name: str) -> None:
    needed = _imports(f"stages.{name}")
    declared = {d for d in _stage(name)["deps"] if d.startswith(OWN_PACKAGES)}
    assert declared == needed


@pytest.mark.parametrize("name", STAGES)
def test_params_are_the_sections_the_module_reads(name: str) -> None:
    module = importlib.import_module(f"stages.{name}")
    declared = _stage(name)["params"]
    assert [p for p in declared if isinstance(p, str)] == list(module.PARAM_SECTIONS)
    live = [p[str(paths.LIVE_PARAMS)] for p in declared if isinstance(p, dict)]
    assert live == ([list(module.LIVE_KEYS)] if hasattr(module, "LIVE_KEYS") else [])


def test_live_params_reach_only_download_and_preprocess() -> None:
    """train and evaluate must not see the as-of day: DVC skips them between retrains."""
    reading = {name for name in STAGES
               if any(isinstance(p, dict) for p in _stage(name)["params"])}
    assert reading == {"download", "preprocess"}
    for name in ("train", "evaluate"):
        assert "data/raw/meta.json" not in _stage(name)["deps"]
        assert not any(d.startswith("data/raw") for d in _stage(name)["deps"])


def test_outputs_match_paths_module() -> None:
    outs = {o for name in STAGES for key in ("outs", "metrics", "plots")
            for o in _entries(_stage(name).get(key, []))}
    expected = {str(p) for p in (paths.RAW_DIR, paths.PROCESSED_DIR, paths.MODELS_DIR,
                                 paths.TRAINING_HISTORY, paths.METRICS, paths.EVALUATION,
                                 paths.TEST_PREDICTIONS,
                                 paths.BACKTEST_BY_HORIZON, paths.TEST_HORIZON_FORECASTS,
                                 paths.FORECAST_CSV, paths.FORECAST_MD, paths.FORECAST_PNG,
                                 paths.FORECAST_HTML)}
    assert outs == expected


def test_every_declared_data_dep_is_some_stage_output() -> None:
    outs = {o for name in STAGES for key in ("outs", "metrics")
            for o in _entries(_stage(name).get(key, []))}
    for name in STAGES:
        for dep in _stage(name)["deps"]:
            if dep.startswith(OWN_PACKAGES):
                assert (ROOT / dep).exists(), dep
            else:
                assert any(dep == o or dep.startswith(o + "/") for o in outs), dep


def test_ticker_file_stays_under_data_raw() -> None:
    assert paths.raw_csv("ETH-USD") == Path("data/raw/ETH-USD.csv")


def test_project_root_from_a_queued_experiment_copy(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    copy.mkdir(parents=True)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(copy)
    assert paths.project_root() == (tmp_path / "repo").resolve()
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == tmp_path.resolve()
