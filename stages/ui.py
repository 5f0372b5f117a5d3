"""The MLflow UI on the project's runs: `python -m stages.ui [--port 5000]` (`make ui`).

Serves the pipeline's store on 127.0.0.1 and prints (with a display, opens) the URL of the
`mlflow.experiment` experiment's runs table. Not a DVC stage.
"""

from __future__ import annotations

import argparse

from crypto_forecast.cli import run_stage
from crypto_forecast.params import load_params


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.ui", description=__doc__)
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL, open nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    experiment = load_params().mlflow.experiment
    from crypto_forecast.tracking.ui import serve

    serve(experiment, args.port, open_browser=not args.no_browser)


if __name__ == "__main__":
    run_stage("ui", main)
