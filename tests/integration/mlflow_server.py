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
def answering(cmd: list[str], *, probe: str, log_path: Path, cwd: Path, env: dict[str, str],
              timeout: float) -> Iterator[None]:
    """Run `cmd` in its own session (teardown ends the whole process group), logging to
    `log_path`, until `probe` answers 200; stop it on exit."""
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"{cmd[:3]} exited: {log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(probe, timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"{cmd[:3]} did not answer {probe}"
            time.sleep(0.2)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


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
    # No background job workers (they are for GenAI jobs, and outlive a terminated server).
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    url = f"http://127.0.0.1:{port}"
    with answering(cmd, probe=f"{url}/health", log_path=tmp / f"mlflow-{port}.log", cwd=tmp, env=env,
                   timeout=timeout):
        yield url
