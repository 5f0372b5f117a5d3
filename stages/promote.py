"""Move a registered model's `champion` alias: `python -m stages.promote --run <run id>`.

evaluate registers each run's LSTM forecaster as a new version of `<ticker>-forecaster`
(e.g. `eth-usd-forecaster`) with alias `candidate`, and the gate points `champion` at the
LSTM's or the naive forecaster. Promoting by hand overrides the gate: `champion` moves to
the chosen version, which records who moved it and what it replaced. Not a DVC stage.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import NoReturn

from crypto_forecast.cli import run_stage, stage_ticker
from crypto_forecast.errors import ConfigError
from crypto_forecast.params import load_params

log = logging.getLogger("stages.promote")


_USAGE = "give exactly one of --run <run id> or --version <n>, e.g. `make promote RUN=<run id>`"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one ERROR line, like every stage."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"promote: {message} — {_USAGE}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m stages.promote", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="RUN_ID", help="the MLflow run that trained the model")
    which.add_argument("--version", type=_positive, help="the registered model version")
    parser.add_argument("--ticker", help="the ticker whose forecaster to promote (default: the "
                        "one download.tickers lists; name one when it lists several)")
    parser.add_argument("--model", help="registered model name (default: <ticker>-forecaster, "
                        "what `make serve` answers with; <ticker>-lstm is the bare network)")
    parser.add_argument("--kind", choices=("lstm", "naive"), default="lstm",
                        help="with --run: which of the run's forecasters (default lstm)")
    parser.add_argument("--alias", default="champion", help="alias to move (default: champion)")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"versions start at 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.run is not None and not re.fullmatch(r"[0-9a-f]{32}", args.run):
        raise ConfigError(f"promote: --run {args.run!r} is not an MLflow run id (32 hex "
                          "characters) — copy it from models/train_info.json or the MLflow UI")
    from crypto_forecast.tracking import registry

    name = args.model or registry.forecaster_model_name(
        stage_ticker(load_params().download.tickers, args.ticker, option="--ticker"))
    version = registry.promote(name, run_id=args.run, version=args.version, alias=args.alias,
                               kind=args.kind, by=_who())
    log.info("%s@%s -> version %d (load it as models:/%s@%s)", name, args.alias, version,
             name, args.alias)


def _who() -> str:
    """Who overrides the gate, for the version's `promoted_by` tag: git's user, else the login."""
    import getpass
    import subprocess

    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True,  # noqa: S607
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    return f"{name or getpass.getuser()} (make promote)"


if __name__ == "__main__":
    run_stage("promote", main)
