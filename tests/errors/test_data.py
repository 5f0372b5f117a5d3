"""Bad price files (`download.source: csv`): one line saying what is wrong with the file,
exit 1, earlier outputs untouched. Stated policies are tested too: unsorted rows are
sorted, gaps are kept and counted in a warning, a tz-aware Date keeps its calendar day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crypto_forecast.data.prices import MAX_CSV_BYTES, read_price_csv
from crypto_forecast.errors import DataError
from tests.errors.conftest import (
    assert_one_line_error,
    new_project,
    params_with,
    snapshot,
    stage,
    with_outputs,
)
from tests.helpers import project_env

START = dt.date(2022, 1, 1)


def rows(n: int = 60, start: dt.date = START) -> list[tuple[str, str]]:
    return [((start + dt.timedelta(days=i)).isoformat(), f"{1000 + 3 * i:.2f}") for i in range(n)]


def csv(data: list[tuple[str, str]], header: str = "Date,Open,Close,Volume") -> str:
    cols = header.split(",")
    lines = [header]
    for day, close in data:
        values = {"Date": day, "Close": close, "Open": close, "Volume": "100", "Day": day}
        lines.append(",".join(values.get(c, "1") for c in cols))
    return "\n".join(lines) + "\n"


def with_close(i: int, value: str) -> list[tuple[str, str]]:
    data = rows()
    data[i] = (data[i][0], value)
    return data


BIG = "big"  # marker: a sparse file over the size limit

# (id, file content, words the ERROR line must contain)
FAILING: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("empty-file", "", ("is empty", "needs a header and rows")),
    ("header-only", "Date,Open,Close,Volume\n", ("has a header but no rows",)),
    ("no-date-column", csv(rows(), "Day,Open,Close"), ("has no Date column", "Yahoo format")),
    ("no-close-column", csv(rows(), "Date,Open,Volume"), ("has no Close column",)),
    ("non-numeric-close", csv(with_close(7, "n/a?")), ("1 Close value(s) are not numbers", "'n/a?'")),
    ("nan-close", csv(with_close(7, "")), ("missing, not finite or not positive", "2022-01-08 = nan")),
    ("inf-close", csv(with_close(7, "inf")), ("not finite", "2022-01-08 = inf")),
    ("zero-close", csv(with_close(7, "0")), ("not positive", "2022-01-08 = 0.0")),
    ("negative-close", csv(with_close(7, "-5")), ("not positive", "2022-01-08 = -5.0")),
    ("duplicate-dates", csv([*rows(), rows()[3]]), ("1 duplicate date(s) (first: 2022-01-04)",
                                                    "keep one row per day")),
    ("too-few-rows", csv(rows(20)), ("has only 20 rows, fewer than the 30 needed", "widen")),
    ("mixed-date-formats", csv([*rows(40), ("02/15/2022", "1.0")]),
     ("1 Date value(s) are not dates in YYYY-MM-DD form", "'02/15/2022'")),
    ("not-utf8", b"Date,Close\n2022-01-01,\xff\xfe\x00\n", ("cannot be read as CSV",)),
    ("outside-range", csv(rows(60, dt.date(2019, 1, 1))),
     ("no rows in 2022-01-01 .. 2022-12-31", "covers 2019-01-01 .. 2019-03-01")),
    ("over-size-limit", BIG, ("is 200 MB, over the 64 MB limit",)),
]

# Prints the stage's peak memory after it exits, to show a huge file is never read.
# VmHWM belongs to this process's own address space; getrusage's ru_maxrss would not do:
# Linux carries it over from the parent (here pytest, often holding TensorFlow) across exec.
PEAK_RSS = """
import runpy, sys
sys.argv = ["stages.download"]
try:
    runpy.run_module("stages.download", run_name="__main__", alter_sys=True)
finally:
    with open("/proc/self/status") as fh:
        hwm = next(line.split()[1] for line in fh if line.startswith("VmHWM:"))
    print("PEAK_RSS_KB", hwm, file=sys.stderr)
"""


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with download and preprocess outputs already made."""
    yield with_outputs(new_project(tmp_path_factory.mktemp("data") / "project"))


def use_csv(project: Path, content: str | bytes, **overrides: object) -> Path:
    path = project.parent / "prices.csv"
    if content == BIG:
        with path.open("wb") as fh:  # sparse: 200 MB by size, no disk used
            fh.write(csv(rows()).encode())
            fh.truncate(200 * 2**20)
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    params = params_with(download__source="csv", download__csv_path=str(path), **overrides)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize(("case", "content", "words"), FAILING, ids=[c[0] for c in FAILING])
def test_bad_price_file(proj: Path, case: str, content: str | bytes, words: tuple[str, ...]) -> None:
    path = use_csv(proj, content)
    before = snapshot(proj)
    env = project_env(proj)
    result = stage(proj, "download", env, harness=PEAK_RSS) if content == BIG else stage(
        proj, "download", env)
    line = assert_one_line_error(result, 1, *words)
    assert str(path) in line or case == "outside-range"
    assert snapshot(proj) == before
    if content == BIG:
        peak_kb = int(result.stderr.split("PEAK_RSS_KB")[1].split()[0])
        assert peak_kb < 150 * 1024, f"peak RSS {peak_kb} kB: the file was read"


def test_oversize_file_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as fh:
        fh.truncate(MAX_CSV_BYTES + 1)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("read_csv was called on an oversize file")

    monkeypatch.setattr(pd, "read_csv", no_reading)
    with pytest.raises(DataError, match="over the 64 MB limit"):
        read_price_csv(path)


def test_too_few_rows_for_window_and_splits(proj: Path) -> None:
    """40 rows pass download's minimum but cannot make window-30 train/val/test splits."""
    use_csv(proj, csv(rows(40)), preprocess__window=30)
    assert stage(proj, "download", project_env(proj)).returncode == 0
    before = snapshot(proj, ("data/ETH-USD/processed",))
    assert before
    result = stage(proj, "preprocess", project_env(proj))
    assert_one_line_error(result, 1, "40 rows are too few for window=30", "preprocess.window")
    assert snapshot(proj, ("data/ETH-USD/processed",)) == before


def _downloaded(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data/ETH-USD/raw/ETH-USD.csv")


def test_unsorted_rows_are_sorted_and_said_so(proj: Path) -> None:
    use_csv(proj, csv(list(reversed(rows()))))
    result = stage(proj, "download", project_env(proj))
    assert result.returncode == 0, result.stderr
    assert "rows were not in date order; sorted them" in result.stderr
    out = _downloaded(proj)
    assert out["Date"].tolist() == sorted(out["Date"]) and len(out) == 60


def test_gaps_are_kept_and_counted(proj: Path) -> None:
    data = rows()
    del data[40:43], data[20], data[10]  # three gaps: one of 3 days, two of 1 day
    use_csv(proj, csv(data))
    result = stage(proj, "download", project_env(proj))
    assert result.returncode == 0, result.stderr
    assert "3 gap(s) between consecutive dates (kept as is, not filled)" in result.stderr
    assert len(_downloaded(proj)) == 55


def test_tz_aware_dates_keep_their_calendar_day(proj: Path) -> None:
    """yfinance writes 00:00 in the exchange's zone; converting to UTC would shift the day."""
    data = [(f"{day} 00:00:00+09:00", close) for day, close in rows()]
    data[5] = (data[5][0].replace(" 00:00:00+09:00", "T00:00:00Z"), data[5][1])
    use_csv(proj, csv(data))
    result = stage(proj, "download", project_env(proj))
    assert result.returncode == 0, result.stderr
    out = _downloaded(proj)
    assert out["Date"].iloc[0] == "2022-01-01" and out["Date"].iloc[5] == "2022-01-06"
    assert out["Date"].tolist() == [d for d, _ in rows()]
