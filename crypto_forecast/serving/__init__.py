"""The forecaster: from recent closes to the next days' prices with their bands."""
