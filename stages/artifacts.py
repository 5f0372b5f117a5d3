"""Reading earlier stages' outputs, with errors that say which stage to rerun."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages import paths
from stages.errors import ArtifactError


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
