"""The forecaster as an MLflow model: a `pyfunc` `PythonModel` around `PriceForecaster`, logged
"from code" (MLflow runs `mlflow_model.py`; nothing is pickled) with the library's own source
as `code_paths` and the bundle folder as its artifact, so it loads without the project.

Input: a frame of recent daily closes (`date`, `close`). Output: one row per day ahead with
`date`, `forecast`, `lower_<level>` and `upper_<level>`. A bad request is an MLflow
INVALID_PARAMETER_VALUE error, which the scoring server answers with HTTP 400."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel

from crypto_forecast.serving.bundle import ForecasterSpec, load_bundle
from crypto_forecast.serving.price_forecaster import INPUT_COLUMNS, ForecastInputError, PriceForecaster

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ENTRY_FILE = Path(__file__).with_name("mlflow_model.py")
ARTIFACT_KEY = "forecaster"
# What loading and predicting needs (no TensorFlow, no Keras): pinned to this environment.
REQUIREMENTS = ("mlflow", "numpy", "pandas", "pydantic", "pyyaml")


class ForecasterModel(PythonModel):
    """MLflow's face of `PriceForecaster`."""

    # MLflow would wrap `predict` to validate by its type hints (and warn without them); the
    # explicit signature is the schema here and the forecaster checks its own input.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        spec, network = load_bundle(Path(context.artifacts[ARTIFACT_KEY]))
        self.forecaster = PriceForecaster(spec, network)

    # No type hints here: MLflow reads them as a schema; the signature is explicit.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        try:
            return self.forecaster.forecast(frame)
        except ForecastInputError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None


def signature(spec: ForecasterSpec) -> Any:
    """Input: date (string), close (double); output: date, forecast and the band bounds."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs: list[Any] = [ColSpec("string", "date"), ColSpec("double", "forecast")]
    outputs += [ColSpec("double", f"{side}_{b.name}") for b in spec.bands for side in ("lower", "upper")]
    inputs: list[Any] = [ColSpec("string", "date"), ColSpec("double", "close")]
    return ModelSignature(inputs=Schema(inputs),
                          outputs=Schema(outputs))


def pinned_requirements() -> list[str]:
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def log_forecaster(folder: Path, spec: ForecasterSpec, example: pd.DataFrame,
                   name: str = "forecaster") -> str:
    """Log the bundle in `folder` as the run's model `name`; returns its model URI."""
    logged = mlflow.pyfunc.log_model(
        name=name, python_model=str(ENTRY_FILE), artifacts={ARTIFACT_KEY: str(folder)},
        code_paths=[str(PACKAGE_DIR)], signature=signature(spec),
        input_example=example[list(INPUT_COLUMNS)].tail(spec.min_days).reset_index(drop=True),
        pip_requirements=pinned_requirements())
    return str(logged.model_uri)
