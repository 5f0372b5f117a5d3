# ruff: noqa: E501  (real DVC and stage output lines, kept whole)
"""Reading `dvc repro --keep-going`'s output: which stages ran, which failed and why, and
which tickers that sinks. The lines are DVC 3's and the stages' own, as seen on a real run
with one ticker's CSV missing (tests/integration/test_portfolio.py runs it for real)."""

from __future__ import annotations

from crypto_forecast.repro import ReproRun

KEEP_GOING = """\
Running stage 'download@ETH-USD':
> python -m stages.download ETH-USD
12:30:35 download   wrote data/ETH-USD/raw/ETH-USD.csv (sha256 164333a94cce…) and data/ETH-USD/raw/meta.json
Running stage 'download@BTC-USD':
> python -m stages.download BTC-USD
12:30:36 download   ERROR prices/BTC-USD.csv does not exist — check download.csv_dir (it should hold BTC-USD.csv) (earlier outputs are in the DVC cache: `dvc checkout` restores them)
WARNING: failed to run: python -m stages.download BTC-USD, exited with 1
WARNING: Stages 'train@BTC-USD', 'summary', 'evaluate@BTC-USD', 'forecast@BTC-USD' and 'preprocess@BTC-USD' will be skipped due to this failure
Running stage 'preprocess@ETH-USD':
> python -m stages.preprocess ETH-USD
Running stage 'forecast@ETH-USD':
> python -m stages.forecast ETH-USD
ERROR: failed to reproduce 'download@BTC-USD'
"""


def read(text: str) -> ReproRun:
    run = ReproRun()
    for line in text.splitlines(keepends=True):
        run.read(line)
    return run


def test_a_failed_ticker_is_named_with_its_own_error_line() -> None:
    run = read(KEEP_GOING)
    assert run.ran == ["download@ETH-USD", "download@BTC-USD", "preprocess@ETH-USD",
                       "forecast@ETH-USD"]
    assert run.failed == {"download@BTC-USD": "prices/BTC-USD.csv does not exist — check "
                                              "download.csv_dir (it should hold BTC-USD.csv)"}
    assert run.failed_tickers() == {"BTC-USD": "download@BTC-USD: prices/BTC-USD.csv does not "
                                               "exist — check download.csv_dir (it should hold "
                                               "BTC-USD.csv)"}
    assert run.failed_elsewhere() == {}


def test_a_stage_without_its_own_line_gets_dvcs() -> None:
    run = read("Running stage 'train@SOL-USD':\n> python -m stages.train SOL-USD\n"
               "Killed\nWARNING: failed to run: python -m stages.train SOL-USD, exited with -9\n")
    assert run.failed == {"train@SOL-USD": "failed to run: python -m stages.train SOL-USD, "
                                           "exited with -9"}


def test_the_summary_failing_belongs_to_no_ticker() -> None:
    run = read("Running stage 'summary':\n12:00:00 summary    ERROR disk full — free space\n"
               "WARNING: failed to run: python -m stages.summary, exited with 1\n")
    assert run.failed_elsewhere() == {"summary": "disk full — free space"}
    assert run.failed_tickers() == {}


def test_a_clean_run_fails_nothing() -> None:
    run = read(KEEP_GOING.replace("ERROR", "INFO").replace("WARNING: failed", "note"))
    assert run.failed == {} and len(run.tail) == len(KEEP_GOING.splitlines())


def test_an_error_line_from_a_stage_that_succeeded_is_no_failure() -> None:
    """A library may log at ERROR inside a stage that still exits 0: DVC decides what failed."""
    run = read("Running stage 'evaluate@ETH-USD':\n"
               "12:00:00 evaluate   ERROR mlflow: a retry was needed\n"
               "Updating lock file 'dvc.lock'\n"
               "Running stage 'download@BTC-USD':\n"
               "12:00:01 download   ERROR no such file — fix it\n"
               "WARNING: failed to run: python -m stages.download BTC-USD, exited with 1\n")
    assert run.failed == {"download@BTC-USD": "no such file — fix it"}
    assert run.failed_tickers() == {"BTC-USD": "download@BTC-USD: no such file — fix it"}
