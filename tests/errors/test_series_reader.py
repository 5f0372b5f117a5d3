"""read_series checks types and values, not only column names (issue 22, item 1).

Each generated case damages exactly one cell of an otherwise valid series.csv and calls the
real reader on the real file: the error must name the file, the column and the damaged
row's date, so a case that failed for another reason (a missing file, a header) cannot pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crypto_forecast.errors import ArtifactError
from crypto_forecast.io.artifacts import read_series

ROWS = 40
DATES = pd.date_range("2022-01-01", periods=ROWS, freq="D")


def _valid_lines() -> list[str]:
    close = 1000.0 + np.cumsum(np.linspace(-3.0, 3.0, ROWS))
    lines = ["date,close,scaled,split"]
    for i, (day, value) in enumerate(zip(DATES, close, strict=True)):
        scaled = "" if i == 0 else f"{(value - 990.0) / 20.0:.10g}"
        lines.append(f"{day.date()},{value:.10g},{scaled},{'train' if i < 30 else 'test'}")
    return lines


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_valid_file_reads_as_pandas_parses_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "series.csv", _valid_lines())
    frame = read_series(path)
    expected = pd.read_csv(path, index_col="date", parse_dates=["date"])
    assert frame.index.equals(expected.index)
    np.testing.assert_array_equal(frame["close"].to_numpy(), expected["close"].to_numpy())
    assert frame["close"].dtype == np.float64


BAD_CLOSE = st.sampled_from(["abc", "", "inf", "-inf", "nan", "-5", "0", "1e16", "12,5", "1.2.3"])
BAD_SCALED = st.sampled_from(["abc", "inf", "x1", "1..2"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(1, ROWS - 1), column=st.sampled_from(["close", "scaled"]), data=st.data())
def test_one_damaged_cell_is_named(tmp_path: Path, row: int, column: str, data: st.DataObject) -> None:
    lines = _valid_lines()
    cells = lines[row + 1].split(",")
    value = data.draw(BAD_CLOSE if column == "close" else BAD_SCALED)
    if value == "12,5":  # a comma splits the row: one cell too many, pandas shifts the index
        value = "12;5"
    cells[1 if column == "close" else 2] = value
    lines[row + 1] = ",".join(cells)
    event(f"damaged {column}")
    path = _write(tmp_path / "series.csv", lines)
    with pytest.raises(ArtifactError) as caught:
        read_series(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"invalid {column}" in message, message
    assert str(DATES[row].date()) in message, message


def test_a_date_that_is_not_a_date_is_named(tmp_path: Path) -> None:
    lines = _valid_lines()
    lines[5] = "not-a-date" + lines[5][10:]
    with pytest.raises(ArtifactError, match="not a date"):
        read_series(_write(tmp_path / "series.csv", lines))


def test_dates_out_of_order_are_refused(tmp_path: Path) -> None:
    lines = _valid_lines()
    lines[5], lines[6] = lines[6], lines[5]
    with pytest.raises(ArtifactError, match="out of order"):
        read_series(_write(tmp_path / "series.csv", lines))
