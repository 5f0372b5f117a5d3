"""Start the project's scoring server (`python -m stages.serve`) on a free loopback port."""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from tests.integration.mlflow_server import answering, free_port


@contextmanager
def scoring_server(cwd: Path, env: dict[str, str], *args: str, timeout: float = 180) -> Iterator[str]:
    """Yield the server's http://127.0.0.1:<port> once /ping answers; stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, answering(
            [sys.executable, "-m", "stages.serve", "--port", str(port), "--workers", "1", *args],
            probe=f"{url}/ping", log_path=Path(tmp) / "serve.log", cwd=cwd, env=env,
            timeout=timeout):
        yield url


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
