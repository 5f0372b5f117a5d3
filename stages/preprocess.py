"""Stage `preprocess@<TICKER>`: Close only, chronological split, what the network models (the
price or the daily log return), scaler fitted on train, windows.

Reads data/<TICKER>/raw/<TICKER>.csv; writes data/<TICKER>/processed/{series.csv, scaler.json,
windows.npz}
from the closes through live.yaml's training cut (all of them without one), latest.csv (those
plus the closes after the cut, for forecast) and train_meta.json (the training closes' meta).
"""

from __future__ import annotations

import io
import json
import logging
from hashlib import sha256

import numpy as np
import pandas as pd

from crypto_forecast.cli import argv_ticker, run_stage, stage_ticker
from crypto_forecast.data.series import (
    split_and_scale,
    split_windows,
    training_csv_bytes,
    with_live_rows,
)
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_raw
from crypto_forecast.params import load_live, load_params

log = logging.getLogger("stages.preprocess")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these), and its keys
# of live.yaml. The ticker comes from the command line (dvc.yaml's matrix).
PARAM_SECTIONS = ("preprocess",)
LIVE_KEYS = ("train_cut",)


def main(ticker: str | None = None) -> None:
    params = load_params()
    ticker = stage_ticker(params.download.tickers, ticker)
    out = paths.for_ticker(ticker)
    cfg = params.preprocess
    cut = load_live().cut_for(ticker)
    raw = read_raw(ticker)
    raw_meta = read_json(out.raw_meta, f"download@{ticker}")
    log.info("read %d daily closes of %s from %s", len(raw), ticker, out.raw_csv)
    closes = raw["Close"]
    if cut is not None:
        closes = closes[closes.index <= pd.Timestamp(cut)]
        log.info("training cut %s (%s): the networks learn from %d closes, %d after it are "
                 "for forecasting only", cut, paths.LIVE_PARAMS, len(closes), len(raw) - len(closes))
    frame, scaler, split = split_and_scale(closes, cfg.window, cfg.val_fraction,
                                           cfg.test_fraction, cfg.target)
    arrays = split_windows(frame, split, cfg.window, cfg.target)
    for part in ("train", "val", "test"):
        y = arrays[f"y_{part}"]
        targets = split.target_range(part)
        log.info("%-5s %5d windows, targets %s .. %s", part, len(y),
                 frame.index[targets.stop - len(y)].date(), frame.index[targets.stop - 1].date())
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    windows = buf.getvalue()
    scaler_json = atomic.json_text({**scaler.to_json(), "target": cfg.target})
    # The training closes' meta: what download said, for the rows through the cut. Keys that
    # move daily (the as-of day) stay out, so train and evaluate rerun only when the cut moves.
    raw_bytes = out.raw_csv.read_bytes()
    train_meta = {key: value for key, value in raw_meta.items() if key != "as_of"}
    if cut is not None:
        train_meta.update(rows=len(frame), last_date=str(frame.index[-1].date()),
                          sha256=sha256(training_csv_bytes(raw_bytes, cut)).hexdigest())
    train_meta["train_cut"] = str(cut) if cut is not None else None
    atomic.write_all({out.windows: windows, out.scaler: scaler_json, out.series: _csv(frame),
                      out.latest_series: _csv(with_live_rows(frame, raw["Close"])),
                      out.train_meta: json.dumps(train_meta, indent=2) + "\n"})
    log.info("target %s; scaler fitted on %d training days: min %.6g, max %.6g",
             cfg.target, split.train_end, scaler.data_min, scaler.data_max)
    log.info("wrote %s/: %s", out.processed_dir, ", ".join(
        p.name for p in (out.windows, out.scaler, out.series, out.latest_series,
                         out.train_meta)))


def _csv(frame: pd.DataFrame) -> str:
    out = io.StringIO()
    frame.to_csv(out, date_format="%Y-%m-%d", float_format="%.10g")
    return out.getvalue()


if __name__ == "__main__":
    run_stage("preprocess", lambda: main(argv_ticker()))
