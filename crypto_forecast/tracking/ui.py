"""`make ui`: the MLflow UI on the pipeline's store, opened on the experiment's training runs.

MLflow 3's UI opens an experiment on its GenAI overview (traces, tokens) unless the
"Model training" switch is on; the URL parameter `workflowType=machine_learning` turns it on,
so the URL printed (and opened) lands on the runs table.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path

from crypto_forecast.errors import TrackingError
from crypto_forecast.tracking.runs import mark_model_development
from crypto_forecast.tracking.store import mlflow_errors, open_experiment, tracking_uri

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_START_TIMEOUT_S = 120.0


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table (not the GenAI overview) on the UI at `base`."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _can_open_browser() -> bool:
    # On a server without a display, `webbrowser` falls back to a text browser that takes
    # over the terminal; only open one where a graphical session exists.
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY")
                                            or os.environ.get("WAYLAND_DISPLAY"))


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise TrackingError(f"`mlflow ui` exited at start ({tail[0][:200]}) — see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TrackingError(f"`mlflow ui` did not answer on {url} within "
                                f"{_START_TIMEOUT_S:.0f} s — see {log_path}")
        time.sleep(0.5)


def serve(experiment: str, port: int, *, open_browser: bool = True) -> None:
    """Serve the MLflow UI on 127.0.0.1:`port` for the pipeline's store until Ctrl-C, and
    print (and, with a display, open) the URL of `experiment`'s runs.

    Against a tracking server (`MLFLOW_TRACKING_URI=http...`) only print its runs URL.
    """
    experiment_id = open_experiment(experiment)  # creates it in a fresh store
    uri = tracking_uri()
    with mlflow_errors(f"cannot tag experiment {experiment!r} in {uri}",
                       "check the store is writable, or set MLFLOW_TRACKING_URI"):
        mark_model_development(experiment_id)
    if uri.startswith(("http://", "https://")):
        url = runs_url(uri, experiment_id)
        log.info("the runs of %r are on the tracking server: %s", experiment, url)
        if open_browser and _can_open_browser():
            webbrowser.open(url)
        return
    if not _port_free(port):
        raise TrackingError(f"port {port} on {HOST} is in use (another `make ui`?) — stop it, "
                            f"or choose another port: PORT={port + 1} make ui")
    log_path = Path(tempfile.gettempdir()) / f"mlflow-ui-{port}.log"
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", HOST, "--port", str(port), "--workers", "1"]
    # No background job workers: they are for GenAI jobs and outlive the UI process.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log.info("starting the MLflow UI on http://%s:%d for %s (its own log: %s)", HOST, port, uri,
             log_path)
    with log_path.open("w") as out:
        # Its own session: Ctrl-C reaches this process, which then stops the whole UI.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,  # noqa: S603
                                start_new_session=True)
        try:
            base = f"http://{HOST}:{port}"
            _wait_until_up(proc, base, log_path)
            url = runs_url(base, experiment_id)
            log.info("runs of %r: %s", experiment, url)
            log.info("press Ctrl-C to stop")
            if open_browser and _can_open_browser():
                webbrowser.open(url)
            code = proc.wait()
            raise TrackingError(f"the MLflow UI stopped by itself (exit code {code}) — see "
                                f"{log_path}")
        except KeyboardInterrupt:
            log.info("stopping the MLflow UI")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
