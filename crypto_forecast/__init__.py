"""crypto_forecast: the library behind the DVC stages in `stages/` — data, the LSTM, its
evaluation, MLflow tracking, the report, serving and file I/O, one subpackage per job."""
