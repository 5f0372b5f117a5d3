"""Stage `summary`: the portfolio in one place. Reads every listed ticker's card
(reports/cards/<TICKER>.json, written by its forecast stage); writes reports/metrics.json (DVC's
headline), reports/summary.{json,md,html,png}. A listed ticker without a card is a row marked
failed (under `dvc repro` it cannot happen: this stage runs once every forecast has; `make repro`
runs it again after a failed ticker, and the row says so)."""

from __future__ import annotations

import logging

from crypto_forecast.cli import run_stage
from crypto_forecast.io import paths
from crypto_forecast.params import load_params

log = logging.getLogger("stages.summary")

# The params.yaml keys this stage reads (dvc.yaml declares exactly these).
PARAM_KEYS = ("download.tickers",)


def main() -> None:
    tickers = load_params().download.tickers
    from crypto_forecast.report.summary import write_summary

    rows = write_summary(tickers)
    for row in rows:
        card = row.card
        if card is None:
            log.warning("%s FAILED: %s", row.ticker, row.failure)
            continue
        skill = card.headline.skill_h1
        log.info("%-9s %-9s skill h1 %s, serves the %s forecaster", row.ticker, card.source_used,
                 "undefined" if skill is None else f"{skill:.3f}",
                 "LSTM's" if card.served == "lstm" else "naive")
    log.info("wrote %s and %s (%d ticker%s)", paths.METRICS, paths.SUMMARY_MD, len(rows),
             "" if len(rows) == 1 else "s")


if __name__ == "__main__":
    run_stage("summary", main)
