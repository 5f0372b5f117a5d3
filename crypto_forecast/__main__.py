"""The command line for what is not a DVC stage: `python -m crypto_forecast <command>`.

    refresh [--as-of YYYY-MM-DD] [--ledger PATH]   run the pipeline as of a morning, record it
    replay --from D1 --to D2 [--ledger PATH]      the refresh as of every day, its own ledger
    ledger export [--csv FILE] [--ticker T] [--ledger PATH]   the ledger as CSV
    check                                         validate params.yaml and live.yaml
    repro                                         check, then every ticker's chain (make repro)
    exps                                          the experiments, only what differs (make exps)

Every command ends like a stage: one ERROR line naming the problem and the fix, and a
non-zero exit, for anything a user can cause.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence

from crypto_forecast.cli import run_stage

# A refresh whose track record raised the alarm (the forecast is still recorded).
ALARM_EXIT = 3


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day — write YYYY-MM-DD") from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m crypto_forecast",
                                  description="Run the forecaster day by day and read its ledger.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    refresh = commands.add_parser(
        "refresh", help="run the pipeline as of a morning and record the served forecast",
        description="Run the pipeline as it would have run on the morning of --as-of (closes "
                    "through the day before), retrain when due, and record the served forecast "
                    "in the ledger.")
    refresh.add_argument("--as-of", type=_day, default=None, metavar="YYYY-MM-DD",
                         help="the morning to run as of (default: today in UTC)")
    refresh.add_argument("--ledger", default=None, metavar="PATH",
                         help="a SQLite ledger file (default: CRYPTO_FORECAST_LEDGER_URI, else "
                              "ledger.db in the project root)")

    replay = commands.add_parser(
        "replay", help="refresh as of every day of a range on a CSV source, into its own ledger",
        description="What if I had run it every day: the real refresh as of each day from --from "
                    "to --to, on download.source: csv, into a ledger of its own. A rerun resumes "
                    "after the last day in that ledger. Prints the track record at the end.")
    replay.add_argument("--from", dest="start", type=_day, required=True, metavar="YYYY-MM-DD")
    replay.add_argument("--to", dest="end", type=_day, required=True, metavar="YYYY-MM-DD")
    replay.add_argument("--ledger", default=None, metavar="PATH",
                        help="the replay's SQLite ledger (default: ledger-replay.db in the "
                             "project root)")

    commands.add_parser(
        "check", help="validate params.yaml and live.yaml (make repro runs it first)",
        description="Validate params.yaml and live.yaml, the ticker symbols included, before DVC "
                    "expands a stage per ticker: one ERROR line naming a bad key or symbol.")

    commands.add_parser(
        "repro", help="check the params, then `dvc repro --keep-going` (make repro)",
        description="Check params.yaml and live.yaml, then run every ticker's chain with `dvc "
                    "repro --keep-going`: a failed ticker does not stop the others. On a failure "
                    "the summary marks the failed tickers and the command exits 1 with one line "
                    "naming each and its cause.")

    commands.add_parser(
        "exps", help="the DVC experiments side by side, only what differs (make exps)",
        description="Read `dvc exp show --json` and print, for the workspace, the baseline and "
                    "every experiment (with its state when queued, running or failed), each "
                    "param and metric that differs between them. Columns beyond the terminal's "
                    "width (COLUMNS) go into further blocks, each starting with the names.")

    ledger = commands.add_parser("ledger", help="read the ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    export = ledger_commands.add_parser("export", help="every served forecast as CSV")
    export.add_argument("--csv", default="-", metavar="FILE",
                        help="where to write it (default: - for standard output)")
    export.add_argument("--ticker", default=None, help="only this ticker")
    export.add_argument("--ledger", default=None, metavar="PATH", help="a SQLite ledger file")
    return top


def command(args: argparse.Namespace) -> tuple[str, Callable[[], None]]:
    """The command's name (for its log lines) and what it runs."""
    if args.command == "refresh":
        from crypto_forecast.live.refresh import refresh

        def run_refresh() -> None:
            if refresh(as_of=args.as_of, ledger_path=args.ledger).alarm:
                sys.exit(ALARM_EXIT)

        return "refresh", run_refresh

    if args.command == "check":
        def run_check() -> None:
            import logging

            from crypto_forecast.params import load_live, load_params

            tickers = load_params().download.tickers
            load_live()
            logging.getLogger("crypto_forecast.check").info(
                "params.yaml and live.yaml are valid; tickers: %s", ", ".join(tickers))

        return "check", run_check

    if args.command == "repro":
        from crypto_forecast.repro import repro

        return "repro", repro

    if args.command == "exps":
        from crypto_forecast.exps import main as exps

        return "exps", exps

    if args.command == "replay":
        from crypto_forecast.live.replay import replay

        def run_replay() -> None:
            replay(args.start, args.end, ledger_path=args.ledger)

        return "replay", run_replay

    from crypto_forecast.live.export import export

    def run_export() -> None:
        export(csv_path=args.csv, ticker=args.ticker, ledger_path=args.ledger)

    return "ledger", run_export


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)  # usage errors: argparse's own line and exit 2
    name, run = command(args)
    run_stage(name, run)


if __name__ == "__main__":
    main(sys.argv[1:])
