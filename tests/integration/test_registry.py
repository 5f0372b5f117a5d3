"""Model registry: training registers the bare network as `eth-usd-lstm` (alias
`candidate`); evaluate registers the forecaster as `eth-usd-forecaster` and the gate moves its
`champion`, which the real scoring server answers with: exactly reports/ETH-USD/forecast.csv.
`python -m stages.promote` moves `champion` by hand. Slow: runs the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import copy_built, run

pytestmark = pytest.mark.slow


@pytest.mark.long  # ~1 min; CI runs it (`pytest -m long`)
def test_champion_alias_loads_the_model_that_made_the_forecast(built: tuple[Path, Path],
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    project, env = copy_built(built, tmp_path)  # the session's `dvc repro`, copied
    store = tmp_path / "store"
    info = json.loads((project / "models/ETH-USD/train_info.json").read_text())
    assert info["registered_model"] == "eth-usd-lstm" and info["model_version"] == 1

    bad = run(["python", "-m", "stages.promote", "--model", "eth-usd-lstm", "--run", "0" * 32],
              project, env, timeout=120)
    assert bad.returncode == 1
    assert "has no version of model 'eth-usd-lstm'" in bad.stderr and "Traceback" not in bad.stderr

    promoted = run(["python", "-m", "stages.promote", "--model", "eth-usd-lstm", "--run",
                    info["run_id"]], project, env, timeout=120)
    assert promoted.returncode == 0, promoted.stderr
    assert "eth-usd-lstm@champion -> version 1" in promoted.stderr

    import mlflow

    from crypto_forecast.data.series import MinMaxScaler, model_series, to_prices
    from crypto_forecast.evaluation.backtest import feedback_forecast
    from tests.helpers import load_keras_model as load_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    assert int(client.get_model_version_by_alias("eth-usd-lstm", "candidate").version) == 1
    champion_version = client.get_model_version_by_alias("eth-usd-lstm", "champion")
    assert champion_version.run_id == info["run_id"]
    # MLflow's Keras 3 flavour, whichever backend trained it (this process's Keras may run
    # on another one: the .keras file is the same).
    champion = mlflow.keras.load_model("models:/eth-usd-lstm@champion")

    series = pd.read_csv(project / "data/ETH-USD/processed/series.csv", index_col="date")
    # The live model's own scaler (fitted on its training days) and the params' target.
    scaler = MinMaxScaler(info["live"]["scaler_min"], info["live"]["scaler_max"])
    close = series["close"].to_numpy()
    last = scaler.transform(model_series(close, info["target"]))[-info["window"]:]
    horizon = len(pd.read_csv(project / "reports/ETH-USD/forecast.csv"))
    local = load_model(project / "models/ETH-USD/model.keras")
    for got_w, want_w in zip(champion.get_weights(), local.get_weights(), strict=True):
        np.testing.assert_array_equal(got_w, want_w)  # the very same weights

    def prices(scaled: np.ndarray) -> np.ndarray:
        return to_prices(scaler.inverse(scaled)[np.newaxis, :], close[-1:], info["target"])[0]

    from_registry = prices(feedback_forecast(champion, last, horizon)[0])
    from_file = prices(feedback_forecast(local, last, horizon)[0])
    # Keras may run the two through differently compiled kernels (XLA or not): the forecasts
    # then differ by float32 rounding only, far below a cent.
    np.testing.assert_allclose(from_registry, from_file, rtol=1e-5, atol=0)
    # The LSTM's forecast in the report: the served one, or beside the naive one it lost to.
    table = pd.read_csv(project / "reports/ETH-USD/forecast.csv")
    report = table["lstm_forecast" if "lstm_forecast" in table else "forecast"].to_numpy()
    np.testing.assert_allclose(from_registry, report, rtol=1e-5, atol=0)

    # What `mlflow models serve` answers with: the registered model's pyfunc, which gives
    # what the NumPy forward pass (evaluate, forecast) gives on the same windows.
    from crypto_forecast.model.numpy_net import load_network

    served = mlflow.pyfunc.load_model("models:/eth-usd-lstm@champion")
    assert served.metadata.flavors["keras"]["keras_backend"] == "jax"  # params.yaml's default
    x = np.stack([last, last * 0.5])[..., np.newaxis].astype(np.float32)
    np.testing.assert_allclose(np.asarray(served.predict(x)).reshape(-1),
                               load_network(project / "models/ETH-USD/model.keras").predict(x),
                               rtol=1e-5, atol=1e-6)


def test_the_served_champion_answers_with_the_report_forecast(built: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    import mlflow

    from crypto_forecast.io.contracts import EvaluationReport
    from tests.serving.server import post_closes, scoring_server

    project, env = copy_built(built, tmp_path)  # the session's `dvc repro`, copied
    store = tmp_path / "store"
    served = EvaluationReport.read(project / "reports/ETH-USD/evaluation.json", "evaluate").serving
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("eth-usd-forecaster", "champion")
    assert champion.tags["kind"] == served.served and champion.tags["promoted_by"] == "gate"
    lstm = client.get_model_version_by_alias("eth-usd-forecaster", "candidate")
    assert lstm.tags["kind"] == "lstm"

    series = pd.read_csv(project / "data/ETH-USD/processed/series.csv")
    closes = series[["date", "close"]].tail(120).reset_index(drop=True)
    report = pd.read_csv(project / "reports/ETH-USD/forecast.csv")
    with scoring_server(project, env) as url:  # models:/eth-usd-forecaster@champion
        status, body = post_closes(url, closes)
        too_few = post_closes(url, closes.tail(3))
    assert status == 200, body
    answer = pd.DataFrame(body["predictions"]).head(len(report))
    assert list(answer["date"]) == list(report["date"])
    columns = ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
    np.testing.assert_allclose(answer[columns], report[columns], rtol=1e-6)
    assert too_few[0] == 400 and "too few days: got 3" in too_few[1]["message"]
