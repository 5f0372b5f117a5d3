"""Team mode: the pipeline logs to a real `mlflow server` (SQLite backend, artifacts served
by the server) over loopback; an unreachable server fails the train stage fast, with one
line and no outputs."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import project_env, run
from tests.integration.mlflow_server import free_port, mlflow_server


@pytest.mark.slow
@pytest.mark.long
def test_pipeline_logs_to_a_tracking_server(project: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with mlflow_server(server_dir) as url:
        env = project_env(project)
        env["MLFLOW_TRACKING_URI"] = url
        built = run(["dvc", "repro"], project, env, timeout=1800)
        assert built.returncode == 0, built.stdout + built.stderr
        info = json.loads((project / "models/ETH-USD/train_info.json").read_text())
        metrics = json.loads((project / "reports/metrics.json").read_text())

        import mlflow

        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow.set_tracking_uri(url)
        client = mlflow.MlflowClient()
        got = client.get_run(info["run_id"])
        assert got.info.status == "FINISHED"
        assert got.data.metrics["param_count"] == 30_651
        assert got.data.metrics["rmse_h1"] == pytest.approx(metrics["rmse_h1"])
        assert got.data.tags["data_sha256"] == json.loads(
            (project / "data/ETH-USD/raw/meta.json").read_text())["sha256"]
        reports = {a.path for a in client.list_artifacts(info["run_id"], "reports")}
        assert "reports/forecast.csv" in reports and "reports/metrics.json" in reports
        version = client.get_model_version_by_alias("eth-usd-lstm", "candidate")
        assert version.run_id == info["run_id"]

        # The model comes back through the server's artifact proxy, weights and all.
        served = mlflow.keras.load_model("models:/eth-usd-lstm@candidate")
        from tests.helpers import load_keras_model as load_model

        local = load_model(project / "models/ETH-USD/model.keras")
        for got_w, want_w in zip(served.get_weights(), local.get_weights(), strict=True):
            np.testing.assert_array_equal(got_w, want_w)  # the very same weights
        x = np.load(project / "data/ETH-USD/processed/windows.npz")["x_test"][:8]
        # Keras may run the two through differently compiled kernels: float32 rounding only.
        np.testing.assert_allclose(served.predict(x, verbose=0), local.predict(x, verbose=0),
                                   rtol=1e-5, atol=0)

    assert list((server_dir / "artifacts").rglob("MLmodel")), "artifacts not stored by the server"
    assert not (project / "mlartifacts").exists() and not (project / "mlflow.db").exists()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def _stamp(line: str) -> int:
    """Seconds since midnight of a log line starting `HH:MM:SS`."""
    hours, minutes, seconds = (int(part) for part in line[:8].split(":"))
    return hours * 3600 + minutes * 60 + seconds


def _prepare(project: Path, env: dict[str, str]) -> None:
    for stage in ("download", "preprocess"):
        done = run(["python", "-m", f"stages.{stage}"], project, env, timeout=300)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_server_fails_train_fast(project: Path, kind: str, request: pytest.FixtureRequest
                                             ) -> None:
    env = project_env(project)
    _prepare(project, env)
    port = free_port() if kind == "refused" else request.getfixturevalue("silent_port")
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    result = run(["python", "-m", "stages.train"], project, env, timeout=120)
    seconds = time.monotonic() - t0
    assert result.returncode == 1, result.stderr
    # MLflow's own defaults would retry for minutes. The wall time includes importing
    # pandas/MLflow, which on a loaded 2-core CI box alone can take 10+ s, so the 15 s
    # budget is checked from the stage's "checking" line to its error line (log stamps are
    # whole seconds), and the whole process gets a loose bound.
    assert seconds < 60, f"took {seconds:.1f} s"
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    checking = [line for line in result.stderr.splitlines() if "checking that the MLflow" in line]
    assert len(checking) == 1, result.stderr
    # Modulo a day: a run that crosses midnight stamps 23:59:58 then 00:00:03.
    waited = (_stamp(errors[0]) - _stamp(checking[0])) % 86_400
    assert 0 <= waited <= 15, f"{waited} s between the probe and the error"
    assert f"127.0.0.1:{port} is unreachable" in errors[0] and "MLFLOW_TRACKING_URI" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (project / "models").exists()
    assert not (project / "reports").exists()
