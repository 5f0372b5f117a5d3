"""MLflow: the store, runs, provenance tags and the model registry (the one other MLflow
import is serving.pyfunc, which is the MLflow model itself)."""
