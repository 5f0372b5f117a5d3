"""params.yaml is parsed into typed, frozen sections; every mistake is one clear line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto_forecast.errors import ConfigError
from crypto_forecast.params import Params, load_params, parse_params
from tests.helpers import TINY_PARAMS, committed_text


def _with(section: str, **changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(TINY_PARAMS)
    raw[section].update(changes)
    return raw


def test_committed_params_are_the_lecture_defaults(tmp_path: Path) -> None:
    # The committed file: a user's `dvc exp run -S` leaves a variant in the workspace.
    (tmp_path / "params.yaml").write_text(committed_text("params.yaml"))
    params = load_params(tmp_path / "params.yaml")
    assert params == Params()  # params.yaml spells out exactly the code defaults
    assert params.download.tickers == ("ETH-USD",)
    assert str(params.download.start) == "2018-01-01" and str(params.download.end) == "2024-01-01"
    assert params.preprocess.window == 60 and params.preprocess.test_fraction == 0.2
    assert params.train.units == (50, 50) and params.train.batch_size == 32
    assert params.forecast.horizon == 10


def test_sections_are_frozen() -> None:
    params = parse_params(TINY_PARAMS)
    with pytest.raises(Exception, match="frozen"):
        params.train.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_with("train", epoch=3), ["train.epoch", "unknown key", "did you mean 'epochs'"]),
        (_with("train", epochs="many"), ["train.epochs", "integer"]),
        (_with("train", epochs=0), ["train.epochs", "greater than or equal to 1"]),
        (_with("train", batch_size=0), ["train.batch_size"]),
        (_with("train", learning_rate=0), ["train.learning_rate", "greater than 0"]),
        (_with("train", units=[]), ["train.units", "non-empty"]),
        (_with("preprocess", window=1), ["preprocess.window", "greater than or equal to 2"]),
        (_with("preprocess", val_fraction=0.5, test_fraction=0.5), ["below 1"]),
        (_with("preprocess", test_fraction=0), ["preprocess.test_fraction"]),
        (_with("evaluate", horizon=0), ["evaluate.horizon"]),
        (_with("download", start="2023-01-01", end="2022-01-01"), ["start", "before end"]),
        (_with("download", start="2022-13-01"), ["download.start", "date"]),
        (_with("download", source="web"), ["download.source", "'auto'", "'csv'"]),
        (_with("download", csv_dir=" "), ["csv_dir is empty"]),
        (_with("download", tickers=["../x"]), ["download.tickers", "Yahoo symbol"]),
        (_with("download", tickers=["a/b"]), ["download.tickers"]),
        (_with("download", tickers=["ETH USD"]), ["download.tickers"]),
        (_with("download", tickers=["ETH-USD", "btc-usd"]), ["download.tickers", "BTC-USD"]),
        ({**TINY_PARAMS, "trian": {}}, ["trian", "unknown key"]),
    ],
)
def test_bad_values_are_one_line_naming_the_key(raw: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert "fix" in message or "set " in message or "swap" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  epochs: 3\n   batch_size: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_params(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_flat_and_digest() -> None:
    params = parse_params(TINY_PARAMS)
    flat = params.flat()
    assert flat["train.units"] == [50, 50]
    assert flat["download.start"] == "2022-01-01"
    assert set(k.split(".")[0] for k in flat) == set(TINY_PARAMS)
    assert params.digest() == parse_params(copy.deepcopy(TINY_PARAMS)).digest()
    assert params.digest() != parse_params(_with("train", epochs=2)).digest()


def test_yaml_roundtrip_of_dvc_set_values() -> None:
    # `dvc exp run -S train.units=[32,32]` writes a YAML list; it must parse.
    raw = yaml.safe_load(yaml.safe_dump(_with("train", units=[32, 32])))
    assert parse_params(raw).train.units == (32, 32)
