"""Stage `preprocess`: Close only, chronological split, what the network models (the price
or the daily log return), scaler fitted on train, windows.

Reads data/raw/<TICKER>.csv; writes data/processed/{series.csv, scaler.json, windows.npz}.
"""

from __future__ import annotations

import io
import logging

import numpy as np

from crypto_forecast.cli import run_stage
from crypto_forecast.data.series import split_and_scale, split_windows
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_raw
from crypto_forecast.params import load_params

log = logging.getLogger("stages.preprocess")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("download", "preprocess")


def main() -> None:
    params = load_params()
    cfg = params.preprocess
    raw = read_raw(params.download.ticker)
    log.info("read %d daily closes from %s", len(raw), paths.raw_csv(params.download.ticker))
    frame, scaler, split = split_and_scale(raw["Close"], cfg.window, cfg.val_fraction,
                                           cfg.test_fraction, cfg.target)
    arrays = split_windows(frame, split, cfg.window, cfg.target)
    for part in ("train", "val", "test"):
        y = arrays[f"y_{part}"]
        targets = split.target_range(part)
        log.info("%-5s %5d windows, targets %s .. %s", part, len(y),
                 frame.index[targets.stop - len(y)].date(), frame.index[targets.stop - 1].date())
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    atomic.write_bytes(paths.WINDOWS, buf.getvalue())
    atomic.write_json(paths.SCALER, {**scaler.to_json(), "target": cfg.target})
    out = io.StringIO()
    frame.to_csv(out, date_format="%Y-%m-%d", float_format="%.10g")
    atomic.write_text(paths.SERIES, out.getvalue())
    log.info("target %s; scaler fitted on %d training days: min %.6g, max %.6g",
             cfg.target, split.train_end, scaler.data_min, scaler.data_max)
    log.info("wrote %s, %s, %s", paths.WINDOWS, paths.SCALER, paths.SERIES)


if __name__ == "__main__":
    run_stage("preprocess", main)
