"""Stage `preprocess`: Close only, chronological split, what the network models (the price
or the daily log return), scaler fitted on train, windows.

Reads data/raw/<TICKER>.csv; writes data/processed/{series.csv, scaler.json, windows.npz}.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pandas as pd

from stages import atomic, paths
from stages.cli import run_stage
from stages.errors import ArtifactError
from stages.params import load_params
from stages.windows import MinMaxScaler, Split, Target, first_valid, make_windows, model_series

log = logging.getLogger("stages.preprocess")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("download", "preprocess")


def read_raw(ticker: str) -> pd.DataFrame:
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


def split_and_scale(close: pd.Series, window: int, val_fraction: float, test_fraction: float,
                    target: Target = "price") -> tuple[pd.DataFrame, MinMaxScaler, Split]:
    """Label each day train/val/test and fit the scaler on the training days only.

    `scaled` is the scaled model value: the close, or the log return into that day.
    (The lecture fitted the scaler on all data, which leaks the test period's range into
    training.)
    """
    split = Split.chronological(len(close), window, val_fraction, test_fraction)
    values = close.to_numpy(dtype=np.float64)
    modelled = model_series(values, target)
    scaler = MinMaxScaler.fit(modelled[: split.train_end])
    frame = pd.DataFrame({"close": values, "scaled": scaler.transform(modelled),
                          "split": split.labels()}, index=close.index)
    frame.index.name = "date"
    return frame, scaler, split


def main() -> None:
    params = load_params()
    cfg = params.preprocess
    raw = read_raw(params.download.ticker)
    frame, scaler, split = split_and_scale(raw["Close"], cfg.window, cfg.val_fraction,
                                           cfg.test_fraction, cfg.target)
    arrays: dict[str, np.ndarray] = {}
    for part in ("train", "val", "test"):
        targets = split.target_range(part)
        if part == "train":  # a log-return window cannot start on day 0 (no return there)
            targets = range(targets.start + first_valid(cfg.target), targets.stop)
        x, y = make_windows(frame["scaled"].to_numpy(), targets, cfg.window)
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x, y
        log.info("%-5s %5d windows, targets %s .. %s", part, len(y),
                 frame.index[targets.start].date(), frame.index[targets.stop - 1].date())
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    atomic.write_bytes(paths.WINDOWS, buf.getvalue())
    atomic.write_json(paths.SCALER, {**scaler.to_json(), "target": cfg.target})
    out = io.StringIO()
    frame.to_csv(out, date_format="%Y-%m-%d", float_format="%.10g")
    atomic.write_text(paths.SERIES, out.getvalue())
    log.info("target %s; scaler fitted on %d training days: min %.6g, max %.6g",
             cfg.target, split.train_end, scaler.data_min, scaler.data_max)


if __name__ == "__main__":
    run_stage("preprocess", main)
