"""The registered forecaster as users reach it: loaded by URI from outside the project, and
answered by MLflow's real scoring server (`python -m stages.serve`) on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.serving.bundle import save_bundle
from crypto_forecast.serving.price_forecaster import PriceForecaster
from tests.helpers import ROOT, project_env, random_network
from tests.serving.server import post_closes, scoring_server
from tests.serving.test_price_forecaster import BAD, _bad, closes, spec

NAME = "eth-usd-forecaster"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], PriceForecaster]]:
    """A forecaster logged and registered (alias champion) in a temp store, as training does."""
    tmp = tmp_path_factory.mktemp("served")
    s, net = spec(), random_network()
    save_bundle(tmp / "bundle", s, net)
    env = project_env(tmp, tmp / "store")
    (tmp / "store").mkdir()
    script = (
        "import mlflow, pandas as pd\n"
        "from pathlib import Path\n"
        "from crypto_forecast.serving.bundle import load_bundle\n"
        "from crypto_forecast.serving.pyfunc import log_forecaster\n"
        f"folder = Path({str(tmp / 'bundle')!r})\n"
        "spec, _ = load_bundle(folder)\n"
        "with mlflow.start_run():\n"
        "    uri = log_forecaster(folder, spec, pd.read_csv('in.csv'))\n"
        f"    v = mlflow.register_model(uri, {NAME!r})\n"
        f"mlflow.MlflowClient().set_registered_model_alias({NAME!r}, 'champion', v.version)\n")
    closes(40).to_csv(tmp / "in.csv", index=False)
    # Run from the temp folder (artifacts land under it), with the project importable.
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    yield env, PriceForecaster(s, net)


def test_loads_by_uri_from_outside_the_project(registered: tuple[dict[str, str], PriceForecaster],
                                               tmp_path: Path) -> None:
    env, forecaster = registered
    frame = closes(40)
    frame.to_csv(tmp_path / "in.csv", index=False)
    script = (
        "import sys, mlflow, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model('models:/{NAME}@champion')\n"
        "import crypto_forecast\n"
        "print(crypto_forecast.__file__)\n"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)\n"
        "m.predict(pd.read_csv('in.csv')).to_csv('out.csv', index=False)\n")
    outside = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=outside,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported_from, heavy = done.stdout.split()[-2:]
    assert not imported_from.startswith(str(ROOT)) and "/code/crypto_forecast/" in imported_from
    assert heavy == "False"
    got = pd.read_csv(tmp_path / "out.csv")
    expected = forecaster.forecast(frame)
    assert list(got["date"]) == list(expected["date"])
    np.testing.assert_allclose(got.drop(columns="date"), expected.drop(columns="date"), rtol=1e-6)


@pytest.fixture(scope="module")
def server(registered: tuple[dict[str, str], PriceForecaster]) -> Iterator[str]:
    with scoring_server(ROOT, registered[0], "--model", NAME) as url:
        yield url


def test_server_answers_what_the_forecaster_computes(
        server: str, registered: tuple[dict[str, str], PriceForecaster]) -> None:
    frame = closes(40)
    status, body = post_closes(server, frame)
    assert status == 200, body
    got = pd.DataFrame(body["predictions"])
    expected = registered[1].forecast(frame)
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.drop(columns="date"), expected.drop(columns="date"), rtol=1e-6)


# Over HTTP, MLflow checks the columns against the signature before the forecaster sees them.
SERVER_BAD = {**BAD, "columns": "Model is missing inputs ['close']"}


@pytest.mark.parametrize("kind", sorted(SERVER_BAD))
def test_each_bad_request_gets_400_naming_it(server: str, kind: str) -> None:
    status, body = post_closes(server, _bad(kind))
    assert status == 400, body
    assert SERVER_BAD[kind] in body["message"], body["message"][-300:]


def test_refuses_a_non_loopback_bind_unless_told(tmp_path: Path) -> None:
    env = project_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "stages.serve", "--model", NAME, "--host",
                           "203.0.113.5"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "--allow-remote" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
