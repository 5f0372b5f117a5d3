"""Reading earlier stages' outputs, with errors that say which stage to rerun."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crypto_forecast.errors import ArtifactError
from crypto_forecast.io import paths


def read_json(path: Path, produced_by: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing — run `dvc repro {produced_by}` first") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"{path} is unreadable ({exc}) — rerun `dvc repro -f {produced_by}`") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} is not a JSON object — rerun `dvc repro -f {produced_by}`")
    return data


def read_windows(path: Path = paths.WINDOWS) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ArtifactError(f"{path} is missing — run `dvc repro preprocess` first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is unreadable ({exc}) — rerun `dvc repro -f preprocess`") from None


def read_series(path: Path = paths.SERIES) -> pd.DataFrame:
    """The preprocessed daily series: date index, close, scaled, split."""
    if not path.exists():
        raise ArtifactError(f"{path} is missing — run `dvc repro preprocess` first")
    try:
        frame = pd.read_csv(path, index_col="date", parse_dates=["date"])
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is unreadable ({exc}) — rerun `dvc repro -f preprocess`") from None
    missing = {"close", "scaled", "split"} - set(frame.columns)
    if missing:
        raise ArtifactError(f"{path} lacks {sorted(missing)} — rerun `dvc repro -f preprocess`")
    return frame


def read_raw(ticker: str) -> pd.DataFrame:
    """The downloaded Date/Close file, checked again: a damaged or edited file is named."""
    path = paths.raw_csv(ticker)
    if not path.exists():
        raise ArtifactError(f"{path} is missing — run `dvc repro download` first")
    fix = f"restore it with `dvc checkout {paths.RAW_DIR}` or rerun `dvc repro -f download`"
    try:  # download wrote and validated it; anything else here is a damaged or edited file
        raw = pd.read_csv(path, index_col="Date", parse_dates=["Date"])
        raw["Close"] = raw["Close"].astype(float)
    except (KeyError, ValueError) as exc:  # pandas' parse errors are ValueErrors
        raise ArtifactError(f"{path} is unreadable ({type(exc).__name__}: {exc}) — {fix}") from None
    close = raw["Close"].to_numpy()
    if not isinstance(raw.index, pd.DatetimeIndex) or not (np.isfinite(close) & (close > 0)).all():
        raise ArtifactError(f"{path} has non-date or non-positive/missing rows — {fix}")
    return raw
