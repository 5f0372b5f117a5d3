"""Bad params.yaml: each mistake stops the stage before any work with one line naming the
key and the fix (exit 2 for params, 1 for a bad file), and earlier outputs stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.errors.conftest import (
    assert_one_line_error,
    new_project,
    params_with,
    snapshot,
    stage,
    with_outputs,
)
from tests.helpers import project_env

P = params_with  # short alias for the table below

# (id, params or raw params.yaml text, exit code, words the ERROR line must contain)
CASES: list[tuple[str, dict[str, Any] | str, int, tuple[str, ...]]] = [
    ("typo-key", P(train__epoch=3), 2,
     ("train.epoch: unknown key", "did you mean 'epochs'?", "fix the spelling or remove it")),
    ("typo-section", {**P(), "trian": {"epochs": 3}}, 2, ("trian: unknown key", "'train'")),
    ("wrong-type", P(train__epochs="ten"), 2, ("train.epochs", "integer", "'ten'", "fix it in params.yaml")),
    ("window-below-2", P(preprocess__window=1), 2, ("preprocess.window", "greater than or equal to 2")),
    ("epochs-zero", P(train__epochs=0), 2, ("train.epochs", "greater than or equal to 1")),
    ("horizon-zero", P(evaluate__horizon=0), 2, ("evaluate.horizon", "greater than or equal to 1")),
    ("batch-size-zero", P(train__batch_size=0), 2, ("train.batch_size", "greater than or equal to 1")),
    ("fraction-zero", P(preprocess__val_fraction=0), 2, ("preprocess.val_fraction", "greater than 0")),
    ("fractions-sum-1", P(preprocess__val_fraction=0.5, preprocess__test_fraction=0.5), 2,
     ("preprocess", "val_fraction + test_fraction must be below 1")),
    ("learning-rate-negative", P(train__learning_rate=-0.01), 2, ("train.learning_rate", "greater than 0")),
    ("start-after-end", P(download__start="2023-01-01", download__end="2022-01-01"), 2,
     ("download", "start (2023-01-01) must be before end (2022-01-01)", "swap or fix the dates")),
    ("malformed-date", P(download__start="2022-13-45"), 2, ("download.start", "'2022-13-45'")),
    ("unknown-source", P(download__source="yahooo"), 2,
     ("download.source", "'auto', 'yahoo', 'csv' or 'synthetic'", "'yahooo'")),
    ("csv-dir-without-the-file", P(download__source="csv"), 1,
     ("prices/ETH-USD.csv does not exist", "check download.csv_dir (it should hold ETH-USD.csv)")),
    ("csv-path-for-several", P(download__tickers=["ETH-USD", "BTC-USD"],
                               download__csv_path="x.csv"), 2,
     ("csv_path names one file but tickers lists 2 symbols", "set download.csv_dir")),
    ("csv-missing-file", P(download__source="csv", download__csv_path="no/such.csv"), 1,
     ("no/such.csv does not exist", "check download.csv_path")),
    ("csv-unreadable", P(download__source="csv", download__csv_path="data"), 1,
     ("data cannot be read", "check download.csv_path")),
    ("ticker-dotdot", P(download__tickers=["../x"]), 2, ("download.tickers", "no '/', '..' or spaces")),
    ("ticker-slash", P(download__tickers=["/etc/passwd"]), 2, ("download.tickers", "'/etc/passwd'")),
    ("ticker-space", P(download__tickers=["ETH-USD", "ETH USD"]), 2, ("download.tickers", "'ETH USD'")),
    ("ticker-lower-case", P(download__tickers=["eth-usd"]), 2, ("download.tickers", "ETH-USD")),
    ("ticker-twice", P(download__tickers=["ETH-USD", "ETH-USD"]), 2,
     ("download.tickers", "lists ETH-USD more than once")),
    ("no-ticker", P(download__tickers=[]), 2, ("download.tickers", "lists no symbol")),
    ("old-ticker-key", P(download__ticker="ETH-USD"), 2, ("download.ticker", "did you mean 'tickers'")),
    ("not-yaml", "download:\n  tickers: [ETH-USD]\n start: '2022-01-01'\n", 2,
     ("not valid YAML at line 3", "fix the syntax")),
    ("not-a-mapping", "- download\n- train\n", 2, ("top level must be a mapping",)),
]


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One project with download outputs already made; each case rewrites params.yaml."""
    yield with_outputs(new_project(tmp_path_factory.mktemp("params") / "project"), "download")


@pytest.mark.parametrize(("case", "params", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_params_one_line_nothing_touched(proj: Path, case: str, params: dict[str, Any] | str,
                                             code: int, words: tuple[str, ...]) -> None:
    text = params if isinstance(params, str) else yaml.safe_dump(params, sort_keys=False)
    (proj / "params.yaml").write_text(text)
    outside = sorted(p.name for p in proj.parent.iterdir())
    before = snapshot(proj)
    assert before, "the fixture should have made outputs to protect"
    result = stage(proj, "download", project_env(proj))
    assert_one_line_error(result, code, *words)
    assert snapshot(proj) == before
    assert sorted(p.name for p in proj.parent.iterdir()) == outside  # nothing written outside


def test_missing_params_file(proj: Path) -> None:
    (proj / "params.yaml").unlink()
    result = stage(proj, "download", project_env(proj))
    assert_one_line_error(result, 2, "params.yaml not found", "run from the project root")


def test_three_typos_reported_one_by_one(proj: Path) -> None:
    """A new user's three typos: each run names the first and counts the rest."""
    params = P(train__epoch=3, preprocess__windows=30, forecast__horizn=5)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    line = assert_one_line_error(stage(proj, "download", project_env(proj)), 2,
                                 "unknown key", "(+2 more problems)")
    assert "did you mean 'window'?" in line
