"""Start a real `mlflow server` / `mlflow ui` on a free loopback port for a test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_server(tmp: Path, *, ui: bool = False, store: Path | None = None,
                  timeout: float = 300) -> Iterator[str]:
    """`mlflow server` (SQLite backend, artifacts served from `tmp/artifacts`) or, with
    `ui=True`, `mlflow ui` on `store`; yields its http://127.0.0.1:<port> URL."""
    port = free_port()
    db = store or tmp / "server.db"
    cmd = [str(VENV_BIN / "mlflow"), "ui" if ui else "server",
           "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    if not ui:
        cmd += ["--serve-artifacts", "--artifacts-destination", str(tmp / "artifacts")]
    log = (tmp / f"mlflow-{port}.log").open("w")
    # No background job workers (they are for GenAI jobs, and outlive a terminated server);
    # its own session, so teardown ends the whole process group.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, (tmp / f"mlflow-{port}.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
