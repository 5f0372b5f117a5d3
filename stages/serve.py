"""Serve the registered forecaster over REST: `python -m stages.serve [--port 5001]`.

Runs MLflow's own scoring server (`mlflow models serve --env-manager local`) on
`models:/<ticker>-forecaster@champion`. It binds 127.0.0.1; any other address is refused
unless `--allow-remote` says so explicitly. Not a DVC stage.

    curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
         -d '{"dataframe_split": {"columns": ["date", "close"], "data": [["2023-11-01", 1810.5], ...]}}'
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import sys

from crypto_forecast.cli import run_stage, stage_ticker
from crypto_forecast.errors import ConfigError, TrackingError

log = logging.getLogger("stages.serve")

# The params.yaml sections this entry point reads.
PARAM_SECTIONS = ("download",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} — see `python -m stages.serve --help`")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m stages.serve", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=5001, help="TCP port (default 5001)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding an address other than loopback")
    parser.add_argument("--ticker", help="serve this ticker's forecaster (default: the one "
                        "download.tickers lists; name one when it lists several)")
    parser.add_argument("--model", help="registered model name (default <ticker>-forecaster)")
    parser.add_argument("--alias", default="champion", help="alias to serve (default champion)")
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not is_loopback(args.host) and not args.allow_remote:
        raise ConfigError(
            f"refusing to serve on {args.host}: only loopback (127.0.0.1) unless you pass "
            "--allow-remote, and then put the server behind your own authentication")
    if not 0 < args.port < 65536 or args.workers < 1:
        raise ConfigError("--port must be 1..65535 and --workers at least 1")
    from crypto_forecast.params import load_params
    from crypto_forecast.tracking import registry
    from crypto_forecast.tracking.store import connect

    name = args.model or registry.forecaster_model_name(
        stage_ticker(load_params().download.tickers, args.ticker, option="--ticker"))
    uri = connect()
    version = registry.alias_version(name, args.alias)
    if version is None:
        raise TrackingError(
            f"{name} has no version with alias {args.alias!r} in {uri} — run `make repro` (it "
            "registers and promotes the forecaster) or `make promote`")
    bin_dir = os.path.dirname(sys.executable)
    mlflow_cli = shutil.which("mlflow", path=bin_dir) or "mlflow"
    log.info("serving models:/%s@%s (version %s) on http://%s:%d — POST /invocations, GET /ping",
             name, args.alias, version, args.host, args.port)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [mlflow_cli, "models", "serve", "-m", f"models:/{name}@{args.alias}",
               "--env-manager", "local", "-h", args.host, "-p", str(args.port),
               "-w", str(args.workers)]
    os.execve(mlflow_cli, command, env)  # noqa: S606  (a fixed argv, no shell)


if __name__ == "__main__":
    run_stage("serve", main)
