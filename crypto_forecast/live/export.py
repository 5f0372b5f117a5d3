"""`python -m crypto_forecast ledger export`: the ledger's served forecasts as CSV."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from crypto_forecast.io import atomic
from crypto_forecast.live.ledger import Ledger, ledger_uri

log = logging.getLogger("crypto_forecast.ledger")


def export(csv_path: str = "-", ticker: str | None = None, ledger_path: str | None = None) -> None:
    """Write the export to `csv_path` (atomically) or, for "-", to standard output."""
    with Ledger.open(ledger_uri(ledger_path)) as ledger:
        text = ledger.export_csv(ticker)
        where = ledger.where
    rows = text.count("\n") - 1
    if csv_path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic.write_text(Path(csv_path), text)
        log.info("wrote %d forecast rows from %s to %s", rows, where, csv_path)
    if rows == 0:
        log.warning("the ledger %s holds no forecast%s yet — run `make refresh` first", where,
                    f" for {ticker}" if ticker else "")
