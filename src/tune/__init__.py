"""`python -m src.tune`: the Optuna search; a trial is a full training scored on validation."""
