"""`make exps` from `dvc exp show --json`: only what differs, every experiment named, queued
ones with their state, and no line past the width. The JSON is DVC 3's shape (its
ExpState/ExpRange dataclasses); tests/integration/test_exp_show.py runs the real command."""

from __future__ import annotations

from typing import Any

import pytest

from crypto_forecast.exps import changed_columns, render, rows_of

TICKERS = ["ETH-USD", "BTC-USD", "SOL-USD"]


def data(seed: int, epochs: int, skills: list[float] | None,
         tickers: list[str] = TICKERS) -> dict[str, Any]:
    params = {"params.yaml": {"data": {
        "download": {"tickers": tickers, "source": "csv", "csv_dir": "../shared/data"},
        "train": {"seed": seed, "epochs": epochs, "units": [50, 50]}}},
        "live.yaml": {"data": {"as_of": None, "train_cut": None}}}
    metrics = {} if skills is None else {"reports/metrics.json": {"data": {
        t: {"skill_h1": s} for t, s in zip(tickers, skills, strict=True)}}}
    return {"rev": "x", "params": params, "metrics": metrics, "deps": {}, "outs": {}}


def exp(name: str, state: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    return {"revs": [{"rev": "abc1234def", "name": name, "data": payload, "error": None,
                      "experiments": None}],
            "executor": {"state": state, "name": "workspace", "local": None}, "name": name}


SHOWN = [
    {"rev": "workspace", "name": None, "data": data(42, 30, [1.0123456, 1.0345678, 0.9912345]),
     "error": None, "experiments": None},
    {"rev": "9f8e7d6c", "name": "main", "data": data(42, 30, [1.0123456, 1.0345678, 0.9912345]),
     "error": None, "experiments": [
         exp("seed-8-with-a-long-experiment-name", "success",
             data(8, 30, [1.0222222, 1.0456789, 0.9876543])),
         exp("more-epochs", "success", data(42, 60, [0.99876, 1.0401, 0.98765])),
         exp("queued-lr", "queued", None),
         exp("broken", "failed", None)]},
]


def test_only_changed_params_and_metrics_are_columns() -> None:
    columns = changed_columns(rows_of(SHOWN))
    assert columns == ["train.seed", "train.epochs", "ETH-USD.skill_h1", "BTC-USD.skill_h1",
                       "SOL-USD.skill_h1"]


@pytest.mark.parametrize("width", [120, 80, 60])
def test_every_name_and_changed_value_fits_the_width(width: int) -> None:
    table = render(rows_of(SHOWN), width)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= width, table
    for name in ("workspace", "main", "seed-8-with-a-long-experiment-name", "more-epochs",
                 "queued-lr", "broken"):
        assert name in table
    for value in ("1.0222", "1.0457", "0.98765", "0.99876", "1.0401", "60", "8"):
        assert value in table, (value, table)
    for state in ("queued", "failed"):
        assert state in table
    # Every block starts with the experiment names.
    blocks = table.split("\n\n")
    assert all(block.startswith("Experiment") for block in blocks)
    assert all(sum("queued-lr" in line for line in b.splitlines()) == 1 for b in blocks)


def test_dvc_style_names_and_three_tickers_fit_one_block_of_120() -> None:
    shown = [SHOWN[0], {**SHOWN[1], "experiments": [
        exp("ruled-tads", "success", data(8, 30, [1.0222222, 1.0456789, 0.9876543])),
        exp("cushy-gybe", "queued", None)]}]
    table = render(rows_of(shown), 120)
    assert "\n\n" not in table and max(len(line) for line in table.splitlines()) <= 120, table


def test_nothing_changed_says_so() -> None:
    same = [SHOWN[0], {**SHOWN[1], "experiments": None}]
    assert render(rows_of(same), 120).startswith("no params or metrics differ")


def test_a_baseline_without_metrics_still_shows_the_experiments_metrics() -> None:
    """Before dvc.lock is committed the baseline has no metrics: the experiment's are news."""
    skills = [1.0222222, 1.0456789, 0.9876543]
    workspace = {**SHOWN[0], "data": data(42, 30, skills)}  # the experiment's, as after a run
    no_lock = {**SHOWN[1], "data": data(42, 30, None), "experiments": [
        exp("ruled-tads", "success", data(42, 30, skills))]}
    table = render(rows_of([workspace, no_lock]), 120)
    assert "ETH-USD.skill_h1" in table and "1.0222" in table, table
