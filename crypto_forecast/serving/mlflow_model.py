"""The file MLflow executes to load the forecaster model ("models from code": no pickle)."""

import mlflow

from crypto_forecast.serving.pyfunc import ForecasterModel

mlflow.models.set_model(ForecasterModel())
