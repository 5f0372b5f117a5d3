"""Move a registered model's `champion` alias: `python -m stages.promote --run <run id>`.

Training registers every model as a new version of `<ticker>-lstm` (e.g. `eth-usd-lstm`)
with alias `candidate`; promoting points `champion` at the chosen version, which then
loads as `models:/eth-usd-lstm@champion`. Not a DVC stage: a deliberate human decision.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import NoReturn

from crypto_forecast.cli import run_stage
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
    parser.add_argument("--model", help="registered model name (default: <download.ticker>-lstm)")
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

    name = args.model or registry.registered_model_name(load_params().download.ticker)
    version = registry.promote(name, run_id=args.run, version=args.version, alias=args.alias)
    log.info("%s@%s -> version %d (load it as models:/%s@%s)", name, args.alias, version,
             name, args.alias)


if __name__ == "__main__":
    run_stage("promote", main)
