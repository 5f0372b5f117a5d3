"""Every artifact path of the pipeline, in one place.

Paths are relative to the working directory, which DVC sets to the workspace root (the
repo, or a temporary copy of it for queued experiments). `tests/unit/test_dvc_wiring.py`
checks that dvc.yaml declares exactly these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PARAMS = Path("params.yaml")
# The as-of day and the training cut, written by `crypto_forecast refresh` (params.LiveParams).
LIVE_PARAMS = Path("live.yaml")

DATA_DIR = Path("data")
MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")
# The portfolio's headline (DVC metrics, what `dvc exp show` compares) and its summary, written
# by the `summary` stage from every ticker's typed evaluation and forecast.
METRICS = REPORTS_DIR / "metrics.json"
SUMMARY_JSON = REPORTS_DIR / "summary.json"
SUMMARY_MD = REPORTS_DIR / "summary.md"
SUMMARY_HTML = REPORTS_DIR / "summary.html"
SUMMARY_PNG = REPORTS_DIR / "summary.png"
# One small file per ticker, written by its forecast stage: the summary's only input. A folder
# of their own, so the summary can depend on it (a stage cannot depend on reports/, which holds
# its own outputs) and reruns when any ticker's row changes.
CARDS_DIR = REPORTS_DIR / "cards"


@dataclass(frozen=True)
class TickerPaths:
    """One ticker's files: data/<TICKER>/, models/<TICKER>/ and reports/<TICKER>/ (the ticker
    already validated as a Yahoo symbol, so it is a safe folder name)."""

    ticker: str

    @property
    def raw_dir(self) -> Path:
        return DATA_DIR / self.ticker / "raw"

    @property
    def raw_csv(self) -> Path:
        """The downloaded closes (Date,Close)."""
        return self.raw_dir / f"{self.ticker}.csv"

    @property
    def raw_meta(self) -> Path:
        return self.raw_dir / "meta.json"

    @property
    def processed_dir(self) -> Path:
        return DATA_DIR / self.ticker / "processed"

    @property
    def series(self) -> Path:
        """The training series: closes through the training cut (all of them without one).
        train and evaluate depend on it alone, so DVC skips them while the cut stands still."""
        return self.processed_dir / "series.csv"

    @property
    def latest_series(self) -> Path:
        """The training series plus the closes after the cut (split `live`)."""
        return self.processed_dir / "latest.csv"

    @property
    def train_meta(self) -> Path:
        """download's meta.json for the training series: its rows, last day and sha256."""
        return self.processed_dir / "train_meta.json"

    @property
    def scaler(self) -> Path:
        return self.processed_dir / "scaler.json"

    @property
    def windows(self) -> Path:
        return self.processed_dir / "windows.npz"

    @property
    def models_dir(self) -> Path:
        return MODELS_DIR / self.ticker

    @property
    def model(self) -> Path:
        """The live network."""
        return self.models_dir / "model.keras"

    @property
    def train_info(self) -> Path:
        return self.models_dir / "train_info.json"

    @property
    def folds_dir(self) -> Path:
        """The walk-forward folds' networks: fold_1.keras, ..."""
        return self.models_dir / "folds"

    def fold_model(self, name: str) -> Path:
        return self.folds_dir / f"{name}.keras"

    @property
    def reports_dir(self) -> Path:
        return REPORTS_DIR / self.ticker

    @property
    def headline(self) -> Path:
        """The ticker's headline numbers (io.contracts.Headline.metrics_file)."""
        return self.reports_dir / "metrics.json"

    @property
    def evaluation(self) -> Path:
        """The typed detail (io.contracts.EvaluationReport); its headline feeds METRICS."""
        return self.reports_dir / "evaluation.json"

    @property
    def plots_dir(self) -> Path:
        return self.reports_dir / "plots"

    @property
    def test_predictions(self) -> Path:
        return self.plots_dir / "test_predictions.csv"

    @property
    def training_history(self) -> Path:
        return self.plots_dir / "training_history.csv"

    @property
    def backtest_by_horizon(self) -> Path:
        return self.plots_dir / "backtest_by_horizon.csv"

    @property
    def test_horizon_forecasts(self) -> Path:
        return self.plots_dir / "test_horizon_forecasts.csv"

    @property
    def forecast_csv(self) -> Path:
        return self.reports_dir / "forecast.csv"

    @property
    def forecast_md(self) -> Path:
        return self.reports_dir / "forecast.md"

    @property
    def forecast_png(self) -> Path:
        return self.reports_dir / "forecast.png"

    @property
    def forecast_html(self) -> Path:
        return self.reports_dir / "forecast.html"

    # Written by `crypto_forecast refresh` from the ledger (not DVC outputs: the ledger is a
    # record).
    @property
    def card(self) -> Path:
        """The ticker's row of the portfolio summary (io.contracts.TickerCard)."""
        return CARDS_DIR / f"{self.ticker}.json"

    @property
    def track_record_json(self) -> Path:
        return self.reports_dir / "track_record.json"

    @property
    def track_record_md(self) -> Path:
        return self.reports_dir / "track_record.md"

    @property
    def track_record_png(self) -> Path:
        return self.reports_dir / "track_record.png"


def for_ticker(ticker: str) -> TickerPaths:
    """Where one ticker's files live."""
    return TickerPaths(ticker)


_EXP_TMP = (".dvc", "tmp", "exps")



def project_root() -> Path:
    """The repository that owns this workspace, also from a queued experiment's temp copy.

    `dvc exp run --queue` runs stages in `<repo>/.dvc/tmp/exps/<tmp>/`, a copy that is
    deleted afterwards; anything meant to outlive the run (the MLflow store) must be
    anchored at `<repo>`, not at the working directory.
    """
    for candidate in (os.environ.get("DVC_ROOT"), os.getcwd()):
        if not candidate:
            continue
        path = Path(candidate).resolve()
        parts = path.parts
        for i in range(len(parts) - len(_EXP_TMP) + 1):
            if parts[i : i + len(_EXP_TMP)] == _EXP_TMP:
                return Path(*parts[:i])
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
