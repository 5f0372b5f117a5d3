"""Reading earlier stages' outputs, with errors that say which stage to rerun."""

from __future__ import annotations

import json
import zipfile
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


WINDOW_PARTS = ("train", "val", "test")


def read_windows(path: Path) -> dict[str, np.ndarray]:
    """The windows preprocess wrote, checked: x_<part> (n, window, 1) and y_<part> (n,),
    finite floats, for train, val and test, one window length throughout."""
    if not path.exists():
        raise ArtifactError(f"{path} is missing — run `dvc repro preprocess` first")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive of windows")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path} is unreadable ({type(exc).__name__}: {str(exc)[:120]}) — "
                            "rerun `dvc repro -f preprocess`") from None
    problem = _windows_problem(arrays)
    if problem:
        raise ArtifactError(f"{path} is damaged ({problem}) — restore it with `dvc checkout "
                            f"{path}` or rerun `dvc repro -f preprocess`")
    return arrays


def _windows_problem(arrays: dict[str, np.ndarray]) -> str | None:
    window = None
    for part in WINDOW_PARTS:
        x, y = arrays.get(f"x_{part}"), arrays.get(f"y_{part}")
        if x is None or y is None:
            return f"no x_{part} / y_{part}"
        if x.dtype.kind != "f" or y.dtype.kind != "f":
            return f"x_{part} / y_{part} are not floats"
        if x.ndim != 3 or x.shape[2] != 1 or y.ndim != 1 or len(x) != len(y):
            return f"x_{part} {x.shape} / y_{part} {y.shape} are not (n, window, 1) / (n,)"
        if window is not None and x.shape[1] != window:
            return f"x_{part} has windows of {x.shape[1]} days, x_train of {window}"
        window = x.shape[1]
        if len(x) == 0 or window < 2:
            return f"x_{part} is empty"
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            return f"x_{part} / y_{part} hold NaN or infinite values"
    return None


def read_series(path: Path) -> pd.DataFrame:
    """The preprocessed daily series: date index, close, scaled, split."""
    if not path.exists():
        raise ArtifactError(f"{path} is missing — run `dvc repro preprocess` first")
    try:
        frame = pd.read_csv(path, index_col="date", parse_dates=["date"])
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is unreadable ({exc}) — rerun `dvc repro -f preprocess`") from None
    fix = "rerun `dvc repro -f preprocess` (or restore it with `dvc checkout`)"
    missing = {"close", "scaled", "split"} - set(frame.columns)
    if missing:
        raise ArtifactError(f"{path} lacks {sorted(missing)} — {fix}")
    # Types and values, not only names: a hand-edited row must be named, never reach NumPy.
    if not isinstance(frame.index, pd.DatetimeIndex):
        bad = next((str(v) for v in frame.index if pd.isna(pd.to_datetime(v, errors="coerce"))), "?")
        raise ArtifactError(f"{path} has a date that is not a date ({bad!r}) — {fix}")
    if not (frame.index.is_monotonic_increasing and frame.index.is_unique):
        raise ArtifactError(f"{path} has dates out of order or repeated — {fix}")
    for column, may_be_empty in (("close", False), ("scaled", True)):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        given = frame[column].notna().to_numpy()
        bad_rows = (given & ~np.isfinite(values)) | (~given & (not may_be_empty))
        if column == "close":
            bad_rows |= given & np.isfinite(values) & ((values < 1e-9) | (values > 1e15))
        if bad_rows.any():
            row = int(np.flatnonzero(bad_rows)[0])
            raise ArtifactError(
                f"{path} has an invalid {column} ({frame[column].iloc[row]!r}) on "
                f"{frame.index[row].date()} — {fix}")
        frame[column] = values
    return frame


def read_raw(ticker: str) -> pd.DataFrame:
    """The downloaded Date/Close file, checked again: a damaged or edited file is named."""
    where = paths.for_ticker(ticker)
    path = where.raw_csv
    if not path.exists():
        raise ArtifactError(f"{path} is missing — run `dvc repro download@{ticker}` first")
    fix = (f"restore it with `dvc checkout {where.raw_dir}` or rerun "
           f"`dvc repro -f download@{ticker}`")
    try:  # download wrote and validated it; anything else here is a damaged or edited file
        raw = pd.read_csv(path, index_col="Date", parse_dates=["Date"])
        raw["Close"] = raw["Close"].astype(float)
    except (KeyError, ValueError) as exc:  # pandas' parse errors are ValueErrors
        raise ArtifactError(f"{path} is unreadable ({type(exc).__name__}: {exc}) — {fix}") from None
    close = raw["Close"].to_numpy()
    # download's bounds (data.prices.MIN_CLOSE / MAX_CLOSE; not imported, so that every stage
    # keeps its declared deps): beyond them an edited file overflows downstream.
    plausible = np.isfinite(close) & (close >= 1e-9) & (close <= 1e15)
    if not isinstance(raw.index, pd.DatetimeIndex) or not plausible.all():
        raise ArtifactError(f"{path} has non-date, missing or implausible (outside 1e-09 .. "
                            f"1e+15) rows — {fix}")
    return raw
