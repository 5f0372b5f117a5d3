"""dvc.yaml agrees with the code: module deps, params sections, and artifact paths."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto_forecast.io import paths
from crypto_forecast.params import DownloadParams
from tests.helpers import ROOT

# Each expands per ticker (dvc.yaml's `matrix`); `summary` runs once, over all of them.
PER_TICKER = ("download", "preprocess", "train", "evaluate", "forecast")
STAGES = (*PER_TICKER, "summary")
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
TICKER = "BTC-USD"  # any symbol: what `${item.ticker}` becomes


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
    """The stage as DVC runs it for TICKER: `${item.ticker}` filled in."""
    stage: dict[str, Any] = yaml.safe_load(
        yaml.safe_dump(DVC["stages"][name]).replace("${item.ticker}", TICKER))
    return stage


def _entries(items: list[Any]) -> list[str]:
    return [next(iter(i)) if isinstance(i, dict) else i for i in items]


@pytest.mark.parametrize("name", PER_TICKER)
def test_per_ticker_stages_expand_over_the_ticker_list(name: str) -> None:
    assert DVC["stages"][name]["matrix"] == {"ticker": "${download.tickers}"}
    assert _stage(name)["cmd"] == f"python -m stages.{name} {TICKER}"


def test_summary_runs_once_over_every_card() -> None:
    assert "matrix" not in DVC["stages"]["summary"]
    assert _stage("summary")["cmd"] == "python -m stages.summary"
    assert str(paths.CARDS_DIR) in _stage("summary")["deps"]


@pytest.mark.parametrize("name", STAGES)
def test_deps_list_every_imported_module(name: str) -> None:
    needed = _imports(f"stages.{name}")
    declared = {d for d in _stage(name)["deps"] if d.startswith(OWN_PACKAGES)}
    assert declared == needed


@pytest.mark.parametrize("name", STAGES)
def test_params_are_the_sections_the_module_reads(name: str) -> None:
    module = importlib.import_module(f"stages.{name}")
    declared = _stage(name)["params"]
    assert [p for p in declared if isinstance(p, str)] == [
        *getattr(module, "PARAM_SECTIONS", ()), *getattr(module, "PARAM_KEYS", ())]
    live = [p[str(paths.LIVE_PARAMS)] for p in declared if isinstance(p, dict)]
    assert live == ([list(module.LIVE_KEYS)] if hasattr(module, "LIVE_KEYS") else [])


def test_download_declares_every_download_key_but_the_ticker_list() -> None:
    """Per-key params, so that adding a ticker reruns none of the others' downloads; a new
    download key left out here would change data without rerunning download."""
    import stages.download

    keys = {f"download.{k}" for k in DownloadParams.model_fields} - {"download.tickers"}
    assert set(stages.download.PARAM_KEYS) == keys


def test_live_params_reach_only_download_and_preprocess() -> None:
    """train and evaluate must not see the as-of day: DVC skips them between retrains."""
    reading = {name for name in STAGES
               if any(isinstance(p, dict) for p in _stage(name)["params"])}
    assert reading == {"download", "preprocess"}
    for name in ("train", "evaluate"):
        assert not any(d.startswith(str(paths.for_ticker(TICKER).raw_dir))
                       for d in _stage(name)["deps"])


def test_outputs_match_paths_module() -> None:
    outs = {o for name in STAGES for key in ("outs", "metrics", "plots")
            for o in _entries(_stage(name).get(key, []))}
    t = paths.for_ticker(TICKER)
    expected = {str(p) for p in (
        t.raw_dir, t.processed_dir, t.models_dir, t.training_history, t.headline, t.evaluation,
        t.test_predictions, t.backtest_by_horizon, t.test_horizon_forecasts, t.card,
        t.forecast_csv, t.forecast_md, t.forecast_png, t.forecast_html,
        paths.METRICS, paths.SUMMARY_JSON, paths.SUMMARY_MD, paths.SUMMARY_HTML,
        paths.SUMMARY_PNG)}
    assert outs == expected


def test_every_declared_data_dep_is_some_stage_output() -> None:
    outs = {o for name in STAGES for key in ("outs", "metrics")
            for o in _entries(_stage(name).get(key, []))}
    for name in STAGES:
        for dep in _stage(name)["deps"]:
            if dep.startswith(OWN_PACKAGES):
                assert (ROOT / dep).exists(), dep
            elif dep == "${download.csv_dir}":  # the user's own price files
                assert name == "download"
            else:  # a stage's output, or (the summary's cards) the folder of several
                assert any(dep == o or dep.startswith(o + "/") or o.startswith(dep + "/")
                           for o in outs), dep


def test_each_tickers_files_stay_under_its_folders() -> None:
    t = paths.for_ticker("ETH-USD")
    assert t.raw_csv == Path("data/ETH-USD/raw/ETH-USD.csv")
    assert t.model == Path("models/ETH-USD/model.keras")
    assert t.forecast_csv == Path("reports/ETH-USD/forecast.csv")


def test_project_root_from_a_queued_experiment_copy(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    copy.mkdir(parents=True)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(copy)
    assert paths.project_root() == (tmp_path / "repo").resolve()
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == tmp_path.resolve()
