"""The as-of window and the training cut: live.yaml, the training series' bytes and digest,
and the latest series forecast reads."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.series import split_and_scale, training_csv_bytes, with_live_rows
from crypto_forecast.errors import ConfigError
from crypto_forecast.params import DownloadParams, LiveParams, load_live

RAW = b"Date,Close\n2023-11-29,1.5\n2023-11-30,2.5\n2023-12-01,3.5\n2023-12-02,4.5\n"


def test_no_cut_keeps_the_bytes_and_their_digest() -> None:
    assert training_csv_bytes(RAW, None) is RAW


def test_cut_drops_the_rows_after_it_only() -> None:
    cut = training_csv_bytes(RAW, dt.date(2023, 11, 30))
    assert cut == b"Date,Close\n2023-11-29,1.5\n2023-11-30,2.5\n"
    assert hashlib.sha256(cut).hexdigest() != hashlib.sha256(RAW).hexdigest()
    assert training_csv_bytes(RAW, dt.date(2024, 1, 1)) == RAW


def test_latest_series_is_the_training_frame_then_live_rows() -> None:
    index = pd.date_range("2023-01-01", periods=40, freq="D", name="Date")
    close = pd.Series(np.linspace(100, 140, 40), index=index)
    frame, _, _ = split_and_scale(close.iloc[:30], 5, 0.1, 0.2, "log_return")
    latest = with_live_rows(frame, close)
    pd.testing.assert_frame_equal(latest.iloc[:30], frame)
    assert list(latest["split"].iloc[30:]) == ["live"] * 10
    assert latest["scaled"].iloc[30:].isna().all()
    np.testing.assert_array_equal(latest["close"].to_numpy(), close.to_numpy())
    assert with_live_rows(frame, close.iloc[:30]).equals(frame)


def test_live_yaml_missing_or_null_is_the_plain_pipeline(tmp_path: Path) -> None:
    assert load_live(tmp_path / "none.yaml") == LiveParams()
    path = tmp_path / "live.yaml"
    path.write_text("as_of: null\ntrain_cut: null\n")
    live = load_live(path)
    assert live.data_end(DownloadParams()) == DownloadParams().end


def test_as_of_is_the_exclusive_end(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text('as_of: "2023-12-05"\ntrain_cut: "2023-12-01"\n')
    live = load_live(path)
    assert live.data_end(DownloadParams()) == dt.date(2023, 12, 5)
    assert live.train_cut == dt.date(2023, 12, 1)


@pytest.mark.parametrize(("text", "message"), [
    ('as_of: "2023-12-05"\ntrain_cut: "2023-12-05"\n', "train_cut .* must be before as_of"),
    ('as_of: "yesterday"\n', "as_of: Input should be a valid date"),
    ('as_of: "2023-12-05"\ntrain_ct: null\n', "train_ct: unknown key .did you mean 'train_cut'"),
    ("- a\n- b\n", "must be a mapping"),
    ("as_of: [\n", "not valid YAML"),
])
def test_bad_live_yaml_is_one_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_live(path)


def test_as_of_before_the_start_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"as_of .2017-01-01. is not after download.start"):
        LiveParams(as_of=dt.date(2017, 1, 1)).data_end(DownloadParams())
