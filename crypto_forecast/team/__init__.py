"""Team mode beyond one machine: a Postgres-backed MLflow server, sweeps split across
workers, and Optuna studies that many workers share."""
