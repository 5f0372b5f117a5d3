"""The live loop: the ledger of served forecasts and the daily refresh that fills it."""
