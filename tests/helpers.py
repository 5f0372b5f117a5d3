"""What the tests share: tiny params, a fresh-clone copy of the project, the environment
stages run in, and the Keras-side reference code the NumPy paths are checked against."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Small enough to run the whole pipeline in well under a minute, still the real code paths
# and the lecture's 30,651-parameter network.
TINY_PARAMS: dict[str, Any] = {
    "download": {"tickers": ["ETH-USD"], "start": "2022-01-01", "end": "2022-12-31",
                 "source": "synthetic", "csv_dir": "prices", "csv_path": None,
                 "max_daily_move": 10, "on_jump": "warn"},
    "preprocess": {"window": 10, "val_fraction": 0.15, "test_fraction": 0.2, "folds": 2},
    "train": {"units": [50, 50], "epochs": 1, "batch_size": 32, "learning_rate": 0.001,
              "patience": 1, "seed": 7},
    "evaluate": {"horizon": 3},
    "forecast": {"horizon": 3, "history_days": 30},
    "mlflow": {"experiment": "tests"},
    "promote": {"max_skill_h1": 1.0, "max_skill_mean": 1.0, "auto": True},
    "refresh": {"retrain_every_days": 7, "alarm_max_skill": 1.25},
}

def top_runs_sql(columns: str, order: str = "start_time, rowid") -> str:
    """SQL for `columns` of the store's top-level runs (not the walk-forward folds' child
    runs), in `order`."""
    return (f"select {columns} from runs where run_uuid not in "  # noqa: S608 (constants)
            f"(select run_uuid from tags where key = 'mlflow.parentRunId') order by {order}")

# Planted in the environment of the session's built pipeline; must never reach the MLflow store.
SECRETS = {"CRYPTO_API_TOKEN": "tok-3f9a-DO-NOT-LOG", "DB_PASSWORD": "pw-77c1-DO-NOT-LOG"}

GIT_ENV = {"GIT_AUTHOR_NAME": "tests", "GIT_AUTHOR_EMAIL": "tests@example.com",
           "GIT_COMMITTER_NAME": "tests", "GIT_COMMITTER_EMAIL": "tests@example.com"}


def tracked_files() -> list[str]:
    """The project's files as a fresh clone would have them (tracked + new, not ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    # dvc.lock is the developer's own pipeline state, not part of a fresh clone.
    return [line for line in out.splitlines()
            if line and line != "dvc.lock" and (ROOT / line).is_file()]


def committed_text(rel: str) -> str:
    """A file as committed at HEAD, not as the user's workspace has it now: `dvc exp run -S`
    rewrites params.yaml and `make refresh` moves live.yaml (the file itself outside git)."""
    done = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    return done.stdout if done.returncode == 0 else (ROOT / rel).read_text()


def write_params(workdir: Path, params: dict[str, Any]) -> None:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def project_env(workdir: Path, store: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update(GIT_ENV)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if store is not None:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    return env


def new_project(dest: Path, params: dict[str, Any] | None = None) -> Path:
    """A git-initialised copy of the project (as a fresh clone has it) with tiny params."""
    for rel in tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    write_params(dest, params or TINY_PARAMS)
    # A fresh clone's live.yaml (no as-of day, no cut), whatever a refresh left here.
    (dest / "live.yaml").write_text(committed_text("live.yaml"))
    env = project_env(dest)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_built(built: tuple[Path, Path], dest: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the session's built project and its store (the `built` fixture);
    returns (project, env)."""
    project, store = built
    shutil.copytree(project, dest / "project", symlinks=True)
    shutil.copytree(store, dest / "store", symlinks=True)
    return dest / "project", project_env(dest / "project", dest / "store")


def built_repro_stdout(built: tuple[Path, Path]) -> str:
    """What `dvc repro` printed while the session's pipeline was built (the `built` fixture)."""
    return (built[0].parent / "repro.stdout").read_text()


def load_keras_model(path: Path) -> Any:
    """Load a `.keras` file with Keras (safe mode on): the reference the NumPy forward pass
    is compared against."""
    import keras

    return keras.models.load_model(path, compile=False, safe_mode=True)


def keras_predict(model: Any) -> Any:
    """The model's forward pass compiled once (a TensorFlow graph, or a jitted JAX function,
    for any batch size): one batched pass per call, as a `Predict` callable for the backtest."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        @jax.jit
        def stateless(trainable: Any, fixed: Any, x: Any) -> Any:
            return model.stateless_call(trainable, fixed, x, training=False)[0]

        def predict_jax(x: Any) -> np.ndarray:
            out = stateless([v.value for v in model.trainable_variables],
                            [v.value for v in model.non_trainable_variables],
                            np.asarray(x, dtype=np.float32))
            return np.asarray(out, dtype=np.float32).reshape(-1)

        return predict_jax

    import tensorflow as tf

    def forward(x: Any) -> Any:
        return model(x, training=False)

    graph = tf.function(forward, autograph=False, reduce_retracing=True,
                        input_signature=[tf.TensorSpec([None, None, 1], tf.float32)])

    def predict(x: Any) -> np.ndarray:
        out = graph(tf.constant(np.asarray(x, dtype=np.float32)))
        return np.asarray(out, dtype=np.float32).reshape(-1)

    return predict


def random_network(units: tuple[int, ...] = (8, 8), seed: int = 0) -> Any:
    """A NumPy stacked-LSTM network with lively random weights (for forecaster tests)."""
    from crypto_forecast.model.numpy_net import LSTMWeights, Network

    rng = np.random.default_rng(seed)
    lstms, width = [], 1
    for u in units:
        lstms.append(LSTMWeights(rng.normal(0, 0.4, (width, 4 * u)).astype(np.float32),
                                 rng.normal(0, 0.4, (u, 4 * u)).astype(np.float32),
                                 rng.normal(0, 0.1, 4 * u).astype(np.float32)))
        width = u
    return Network(tuple(lstms), rng.normal(0, 0.2, (width, 1)).astype(np.float32),
                   np.array([0.01], np.float32))


def fold_models(close: Any, *, window: int = 10, val_fraction: float = 0.2,
                test_fraction: float = 0.2, folds: int = 2, target: str = "price",
                network: Any = None) -> list[Any]:
    """The walk-forward folds then the live model of `close`, each with its own scaler (from
    `fold_arrays`) and `network(scaler)` as its network (default: the last input value,
    which for target price is persistence itself)."""
    from crypto_forecast.data.folds import fold_arrays, plan_folds
    from crypto_forecast.evaluation.walk_forward import FoldModel

    values = np.asarray(close, dtype=np.float64)
    plan = plan_folds(values.size, window=window, val_fraction=val_fraction,
                      test_fraction=test_fraction, folds=folds, target=target)  # type: ignore[arg-type]
    out = []
    for fold in plan:
        scaler, _ = fold_arrays(values, fold, window=window, target=target)  # type: ignore[arg-type]
        net = network(scaler) if network is not None else last_input
        out.append(FoldModel(fold=fold, network=net, scaler=scaler))
    return out


def last_input(x: Any) -> np.ndarray:
    """A 'network' that predicts its newest input: persistence, in model units."""
    return np.asarray(x)[:, -1, 0]
