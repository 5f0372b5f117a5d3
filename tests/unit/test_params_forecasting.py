"""The forecasting params: target, baselines, interval levels and cross-section checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crypto_forecast.errors import ConfigError
from crypto_forecast.params import Params, parse_params
from tests.helpers import TINY_PARAMS


def _with(**sections: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(TINY_PARAMS)
    for name, changes in sections.items():
        raw[name].update(changes)
    return raw


def test_defaults() -> None:
    params = Params()
    assert params.preprocess.target == "log_return" and params.preprocess.folds == 4
    assert params.evaluate.interval_levels == (0.8, 0.95) and params.evaluate.ma_window == 7
    assert parse_params(_with(preprocess={"target": "price"})).preprocess.target == "price"
    assert params.promote.min_gain_vs_champion == 0.0 and params.train.workers == 0


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_with(preprocess={"target": "returns"}), ["preprocess.target", "'price'", "'log_return'"]),
        (_with(evaluate={"interval_levels": [0.95, 0.8]}), ["evaluate.interval_levels", "increasing"]),
        (_with(evaluate={"interval_levels": [80]}), ["evaluate.interval_levels"]),
        (_with(evaluate={"interval_levels": []}), ["evaluate.interval_levels"]),
        (_with(evaluate={"ma_window": 0}), ["evaluate.ma_window"]),
        (_with(evaluate={"interval_scaling": "garch"}), ["evaluate.interval_scaling", "'volatility'"]),
        (_with(evaluate={"volatility_days": 1}), ["evaluate.volatility_days"]),
        (_with(forecast={"horizon": 5}), ["forecast.horizon (5) is above evaluate.horizon (3)",
                                          "lower forecast.horizon"]),
        (_with(evaluate={"ma_window": 11}), ["evaluate.ma_window (11)", "lower evaluate.ma_window"]),
    ],
)
def test_bad_values_are_one_line_naming_the_key_and_fix(raw: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "\n" not in message and ": :" not in message
    for word in words:
        assert word in message
