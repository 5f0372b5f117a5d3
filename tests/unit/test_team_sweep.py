"""Splitting a sweep across workers: DVC's own grid expansion, a deterministic slice per
worker, every point run exactly once; the one place the tuning objective is read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto_forecast.errors import ConfigError
from crypto_forecast.team.dvc import TeamError
from crypto_forecast.team.sweep import check_keys, expand_grid, parse_worker, sweep_name, worker_slice
from crypto_forecast.team.tune import objective_from_metrics

GRID = "train.units=[32,32],[50,50] train.learning_rate=0.001,0.003"


def test_grid_expands_in_dvc_order() -> None:
    assert expand_grid(GRID) == [
        ["train.units=[32,32]", "train.learning_rate=0.001"],
        ["train.units=[32,32]", "train.learning_rate=0.003"],
        ["train.units=[50,50]", "train.learning_rate=0.001"],
        ["train.units=[50,50]", "train.learning_rate=0.003"],
    ]
    assert len(expand_grid("train.epochs=range(1,4) train.seed=choice(1,2)")) == 6


@given(points=st.integers(0, 40), workers=st.integers(1, 9))
def test_workers_cover_every_point_exactly_once(points: int, workers: int) -> None:
    grid = [[f"train.seed={i}"] for i in range(points)]
    taken = [i for k in range(1, workers + 1) for i, _ in worker_slice(grid, k, workers)]
    assert sorted(taken) == list(range(points))
    sizes = [len(worker_slice(grid, k, workers)) for k in range(1, workers + 1)]
    assert max(sizes) - min(sizes) <= 1  # balanced


def test_two_workers_of_the_2x2_grid() -> None:
    points = expand_grid(GRID)
    assert [i for i, _ in worker_slice(points, 1, 2)] == [0, 2]
    assert [i for i, _ in worker_slice(points, 2, 2)] == [1, 3]
    assert sweep_name(GRID) == sweep_name("  " + GRID.replace(" ", "   ")) != sweep_name("train.seed=1,2")


@pytest.mark.parametrize("spec", ["0/3", "4/3", "2", "a/b", "2/0", ""])
def test_bad_worker_spec_says_how(spec: str) -> None:
    with pytest.raises(ConfigError, match="K/N"):
        parse_worker(spec)
    assert parse_worker("3/3") == (3, 3)


@pytest.mark.parametrize("grid", ["", "train.units=[32,32", "train.lr=choice("])
def test_bad_grid_is_a_config_error(grid: str) -> None:
    with pytest.raises(ConfigError):
        expand_grid(grid)


def test_unknown_grid_key_is_named() -> None:
    params = {"train": {"learning_rate": 0.001}}
    check_keys(expand_grid("train.learning_rate=0.1,0.2"), params)
    with pytest.raises(ConfigError, match=r"'train\.learnig_rate' is not in params\.yaml"):
        check_keys(expand_grid("train.learnig_rate=0.1,0.2"), params)


def test_objective_is_read_in_one_place() -> None:
    assert objective_from_metrics({"skill_h1": 0.25, "rmse_h1": 3.0}) == 0.25
    with pytest.raises(TeamError, match="OBJECTIVE_KEY"):
        objective_from_metrics({"renamed": 0.25})
