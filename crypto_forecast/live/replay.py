"""`python -m crypto_forecast replay --from D1 --to D2`: what if I had run it every day.

The real refresh as of each day from D1 to D2, on a CSV source, into a ledger of its own
(never the live one). It resumes after the last day in its ledger, so Ctrl-C and a rerun
lose at most the day in progress. At the end it prints the track record.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from pathlib import Path

from crypto_forecast.errors import RefreshError
from crypto_forecast.io import paths
from crypto_forecast.live.ledger import Ledger, ledger_uri
from crypto_forecast.live.refresh import refresh
from crypto_forecast.params import load_params

log = logging.getLogger("crypto_forecast.replay")

REPLAY_LEDGER = "ledger-replay.db"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def replay(start: dt.date, end: dt.date, ledger_path: str | None = None) -> list[dt.date]:
    """Refresh as of every day from `start` to `end` not yet in the replay ledger; returns the
    days whose refresh raised the alarm."""
    if end < start:
        raise RefreshError(f"--to {end} is before --from {start} — swap them")
    params = load_params()
    cfg = params.download
    if cfg.source != "csv":
        raise RefreshError(f"download.source is {cfg.source}; a replay runs on saved closes — set "
                           "download.source: csv and download.csv_dir (a folder of Yahoo-format "
                           "<TICKER>.csv files)")
    path = Path(ledger_path) if ledger_path else paths.project_root() / REPLAY_LEDGER
    uri = ledger_uri(path)
    if uri == ledger_uri():
        raise RefreshError(f"{path} is the live ledger; a replay writes a ledger of its own — pass "
                           "another --ledger")
    with Ledger.open(uri) as ledger:
        # Resume after the last day every ticker has (a ticker added since starts there too).
        lasts = [ledger.last_refresh(ticker) for ticker in cfg.tickers]
    known = [x for x in lasts if x is not None]
    last = min(known, key=lambda x: x.as_of) if len(known) == len(lasts) else None
    first = start if last is None else max(start, last.as_of + dt.timedelta(days=1))
    days = [first + dt.timedelta(days=i) for i in range((end - first).days + 1)]
    log.info("replay of %s, %s .. %s, into %s (read it with `python -m crypto_forecast ledger "
             "export --ledger %s`)", ", ".join(cfg.tickers), start, end, path, path)
    if last is not None and last.as_of >= start:
        log.info("resuming: that ledger already holds %s .. %s", start, last.as_of)
    alarms: list[dt.date] = []
    refresh_log = logging.getLogger("crypto_forecast.refresh")
    started = time.perf_counter()
    for i, day in enumerate(days, start=1):
        t0 = time.perf_counter()
        level = refresh_log.level
        refresh_log.setLevel(logging.WARNING)  # one progress line a day instead
        try:
            done = refresh(as_of=day, ledger_path=str(path), echo=False)
        finally:
            refresh_log.setLevel(level)
        if done.alarm:
            alarms.append(day)
        took = time.perf_counter() - t0
        left = (time.perf_counter() - started) / i * (len(days) - i)
        log.info("[%d/%d] %s: %s%s in %.1f s; about %s left", i, len(days), day,
                 ", ".join(done.stages) or "nothing to run",
                 f" (retrained {', '.join(done.retrained)})" if done.retrained else "", took,
                 _duration(left))
    if days:
        log.info("replayed %d day%s in %s%s", len(days), "" if len(days) == 1 else "s",
                 _duration(time.perf_counter() - started),
                 f"; the alarm fired on {', '.join(map(str, alarms))}" if alarms else
                 "; the alarm never fired")
    else:
        log.info("nothing to do: the ledger already holds every day through %s", end)
    for ticker in cfg.tickers:
        record = paths.for_ticker(ticker).track_record_md
        if record.exists():
            sys.stdout.write(record.read_text(encoding="utf-8"))
            sys.stdout.flush()
    return alarms
