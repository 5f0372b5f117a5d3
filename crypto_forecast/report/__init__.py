"""The report a person reads: verdict, forecast table, chart and model-vs-baselines tables."""
