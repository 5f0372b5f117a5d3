"""MLflow: the store, runs, provenance tags and the model registry — the only code that imports mlflow."""
