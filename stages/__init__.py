"""The pipeline's entry points, one per DVC stage: read params, call crypto_forecast, write outputs."""
