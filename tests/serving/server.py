"""Start the project's scoring server (`python -m stages.serve`) on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from tests.integration.mlflow_server import free_port


@contextmanager
def scoring_server(cwd: Path, env: dict[str, str], *args: str, timeout: float = 180) -> Iterator[str]:
    """Yield the server's http://127.0.0.1:<port> once /ping answers; stop it afterwards."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stages.serve", "--port", str(port),
                                 "--workers", "1", *args], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"the scoring server exited: {log.read()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:  # noqa: S310
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                assert time.monotonic() < deadline, "the scoring server did not answer /ping"
                time.sleep(0.2)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def post_closes(url: str, frame: pd.DataFrame) -> tuple[int, dict[str, Any]]:
    """POST `frame` as a `dataframe_split` request; (HTTP status, JSON body)."""
    body = json.dumps({"dataframe_split": {"columns": list(frame.columns),
                                           "data": frame.astype(object).where(frame.notna(), None)
                                           .to_numpy().tolist()}}).encode()
    req = urllib.request.Request(f"{url}/invocations", data=body,  # noqa: S310  (http://127.0.0.1)
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
