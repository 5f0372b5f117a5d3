"""Stage `download@<TICKER>`: daily closes for one ticker from Yahoo, a CSV, or a synthetic
sample.

Writes data/<TICKER>/raw/<TICKER>.csv (Date,Close) and data/<TICKER>/raw/meta.json (source
used, rows, date range, sha256, library versions). `source: auto` tries Yahoo and, only when
Yahoo cannot be reached at all, falls back to a seeded synthetic series, loudly.
"""

from __future__ import annotations

import datetime as dt
import logging

from crypto_forecast.cli import argv_ticker, run_stage, stage_ticker
from crypto_forecast.io import atomic, paths
from crypto_forecast.params import load_live, load_params

# pandas and the price modules are imported where used, after params.yaml is validated:
# a typo in params.yaml is reported in a fraction of a second.

log = logging.getLogger("stages.download")

# The params.yaml keys this stage reads (dvc.yaml declares exactly these: not
# download.tickers, so adding a ticker runs nothing of the others'), and its keys of live.yaml.
PARAM_KEYS = ("download.start", "download.end", "download.source", "download.csv_dir",
              "download.csv_path", "download.max_daily_move", "download.on_jump")
LIVE_KEYS = ("as_of",)


def main(ticker: str | None = None) -> None:
    cfg = load_params().download
    ticker = stage_ticker(cfg.tickers, ticker)
    out = paths.for_ticker(ticker)
    live = load_live()
    if live.as_of is not None:
        log.info("as of %s (%s): closes through %s", live.as_of, paths.LIVE_PARAMS,
                 live.as_of - dt.timedelta(days=1))
    cfg = cfg.model_copy(update={"end": live.data_end(cfg)})
    from crypto_forecast.data.prices import sha256, to_csv_bytes, validate_prices
    from crypto_forecast.data.sources import acquire, library_versions

    frame, used, note = acquire(cfg, ticker)
    frame = validate_prices(frame, str(cfg.csv_file(ticker)) if used == "csv"
                            else f"{ticker} ({used})",
                            max_daily_move=cfg.max_daily_move, on_jump=cfg.on_jump)
    first, last = frame.index[0].date(), frame.index[-1].date()
    if first > cfg.start + dt.timedelta(days=7):
        log.warning("%s: data covers only %s .. %s, starting later than download.start %s (the "
                    "asset may not have traded earlier) — set download.start to %s to silence "
                    "this", ticker, first, last, cfg.start, first)
    data = to_csv_bytes(frame)
    digest = sha256(data)
    meta = {
        "ticker": ticker,
        "source_requested": cfg.source,
        "source_used": used,
        "source_note": note,
        "source_file": str(cfg.csv_file(ticker)) if used == "csv" else None,
        "rows": len(frame),
        "first_date": str(first),
        "last_date": str(last),
        "as_of": str(live.as_of) if live.as_of else None,
        "sha256": digest,
        "versions": library_versions(),
    }
    atomic.write_all({out.raw_csv: data, out.raw_meta: atomic.json_text(meta)})
    log.info("got %d daily closes of %s, %s .. %s, from %s", len(frame), ticker, first, last,
             used.upper() if used == "synthetic" else cfg.csv_file(ticker) if used == "csv"
             else used)
    log.info("wrote %s (sha256 %s…) and %s", out.raw_csv, digest[:12], out.raw_meta)


if __name__ == "__main__":
    run_stage("download", lambda: main(argv_ticker()))
