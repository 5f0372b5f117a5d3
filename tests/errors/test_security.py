"""Security: no pickle or other unsafe deserialisation, servers on 127.0.0.1 only, and the
MLflow store holds exactly the declared params and no environment variables or secrets."""

from __future__ import annotations

import io
import re
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from crypto_forecast.errors import ArtifactError, ConfigError
from crypto_forecast.io.artifacts import read_windows
from crypto_forecast.params import Params, load_params
from tests.errors.conftest import SECRETS
from tests.helpers import TINY_PARAMS

ROOT = Path(__file__).resolve().parents[2]
OWN = Path(__file__).resolve()
CODE = sorted(p for d in ("stages", "crypto_forecast", "tests", "bench", ".ci") if (ROOT / d).exists()
              for p in (ROOT / d).rglob("*.py") if p.resolve() != OWN)

UNSAFE = {
    "pickle": r"\bimport\s+(c?pickle|dill|cloudpickle|joblib|marshal|shelve)\b|"
              r"\bfrom\s+(c?pickle|dill|cloudpickle|joblib|marshal|shelve)\s+import\b",
    "pickle-io": r"\b(pickle|joblib|dill|cloudpickle)\.(loads?|dumps?)\(|\.to_pickle\(|read_pickle\(",
    "numpy-pickle": r"allow_pickle\s*=\s*True",
    "keras-unsafe": r"safe_mode\s*=\s*False|enable_unsafe_deserialization",
    "yaml-unsafe": r"yaml\.(unsafe_)?load\(|yaml\.load_all\(|Loader\s*=\s*yaml\.(Unsafe|Full)?Loader",
    "eval-exec": r"(?<![\w.])(eval|exec)\(",
    "torch-load": r"torch\.load\(",
    "bind-all": r"0\.0\.0\.0|--host[= ]+(?!127\.0\.0\.1)",
}


@pytest.mark.parametrize("rule", sorted(UNSAFE))
def test_no_unsafe_code(rule: str) -> None:
    pattern = re.compile(UNSAFE[rule])
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in CODE
            for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_the_patterns_do_catch_what_they_are_for() -> None:
    samples = {"pickle": "import pickle", "pickle-io": "obj = joblib.load(f)",
               "numpy-pickle": "np.load(p, allow_pickle=True)", "keras-unsafe": "safe_mode=False",
               "yaml-unsafe": "yaml.load(text)", "eval-exec": "eval(s)",
               "torch-load": "torch.load(f)", "bind-all": "--host 0.0.0.0"}
    assert set(samples) == set(UNSAFE)
    for rule, sample in samples.items():
        assert re.search(UNSAFE[rule], sample), rule
    assert not re.search(UNSAFE["bind-all"], "--host 127.0.0.1")
    assert not re.search(UNSAFE["eval-exec"], "model.evaluate(x)")


def test_params_yaml_cannot_construct_python_objects(tmp_path: Path) -> None:
    # A YAML tag that would run code under an unsafe loader is refused as invalid YAML.
    marker = tmp_path / "ran"
    path = tmp_path / "params.yaml"
    path.write_text(f'train: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)
    assert not marker.exists()


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, x_train=np.array([{"payload": 1}], dtype=object))
    path = tmp_path / "windows.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ArtifactError, match=r"is unreadable \(ValueError: Object arrays cannot be loaded "
                       r"when allow_pickle=False\) — rerun `dvc repro -f preprocess`"):
        read_windows(path)


def test_servers_bind_loopback_only() -> None:
    # make ui's server (crypto_forecast/tracking/ui.py) binds HOST, which is loopback.
    from crypto_forecast.tracking import ui

    assert ui.HOST == "127.0.0.1"
    starts = re.compile(r"""["']mlflow["'],\s*["'](server|ui)["']|mlflow (server|ui) --|\.bind\(""")
    servers = []
    for path in [*CODE, ROOT / "Makefile"]:
        text = path.read_text()
        for line in text.splitlines():
            assert not re.search(r"""\.bind\(\(\s*["']["']""", line), f"{path}: binds every interface"
            if starts.search(line):
                servers.append(path)
                assert "127.0.0.1" in text, f"{path}: {line.strip()}"
    assert ROOT / "crypto_forecast/tracking/ui.py" in servers


@pytest.mark.slow
def test_a_model_carrying_code_is_refused_unrun(tmp_path: Path) -> None:
    # The stages read `.keras` archives as JSON + HDF5 (crypto_forecast.model.numpy_net), so no
    # code inside one can run; a Lambda layer is named and refused.
    import keras

    from crypto_forecast.model.numpy_net import load_network

    inputs = keras.Input(shape=(3,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ArtifactError, match=r"is not the stacked-LSTM network this pipeline "
                       r"trains \(layers: Lambda\)"):
        load_network(path)


@pytest.mark.slow
def test_store_has_declared_params_only_and_no_secrets(built: tuple[Path, Path]) -> None:
    from stages.train import PARAM_SECTIONS

    project, store = built
    with sqlite3.connect(store / "mlflow.db") as db:
        children = dict(db.execute(
            "select run_uuid, value from tags where key='mlflow.parentRunId'").fetchall())
        (run_id,) = [r for (r,) in db.execute("select run_uuid from runs") if r not in children]
        logged = dict(db.execute("select key, value from params where run_uuid=?", (run_id,)))
        child_params = {child: dict(db.execute(
            "select key, value from params where run_uuid=?", (child,))) for child in children}
    # One child run per walk-forward fold, under the training run, with only its dates.
    assert set(children.values()) == {run_id}
    assert len(children) == TINY_PARAMS["preprocess"]["folds"]
    for params in child_params.values():
        assert set(params) == {"cutoff", "train_last", "val_last"}
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in params.values()), params
        assert params["train_last"] < params["val_last"] < params["cutoff"]
    declared = {k: v for k, v in Params.model_validate(TINY_PARAMS).flat().items()
                if k.split(".")[0] in PARAM_SECTIONS}
    assert set(logged) == set(declared)
    for key, value in declared.items():
        expected = "null" if value is None else str(value)
        assert logged[key] == expected, key

    blobs = [store / "mlflow.db"] + [p for p in (store / "mlartifacts").rglob("*") if p.is_file()]
    blobs += [p for d in ("data", "models", "reports") for p in (project / d).rglob("*") if p.is_file()]
    for path in blobs:
        data = path.read_bytes()
        for name, secret in SECRETS.items():
            assert secret.encode() not in data, f"{name}'s value found in {path}"
        assert path.suffix not in {".pkl", ".pickle", ".joblib"}, path
        assert not re.match(rb"\x80[\x02-\x05]", data[:2]), f"{path} is a pickle"
        if path.suffix == ".npz":  # loads with pickles refused: no object arrays inside
            with np.load(path, allow_pickle=False) as npz:
                assert all(npz[k].dtype != object for k in npz.files)
        elif zipfile.is_zipfile(path):  # .keras archives: config and weights, no pickles
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
            assert all(n.endswith((".json", ".h5", ".txt")) for n in names), names
