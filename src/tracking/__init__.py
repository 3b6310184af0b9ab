"""MLflow: runs (runs.py) and the model registry (promote.py).

Where runs go is MLflow's own resolution, and nothing here overrides it:
`MLFLOW_TRACKING_URI` when set (a team's tracking server, or a test's temporary store),
else MLflow's default store, `sqlite:///mlflow.db` (+ `./mlruns/`) in the working
directory, which for every command here is the project root. No code calls
`mlflow.set_tracking_uri`: it would also write the variable into the environment, so a
second store chosen in the same process (or a child process) would silently be ignored.

This file stays free of heavy imports: `src.infer.enhance` reads these names before it
knows whether it needs MLflow at all.
"""

from __future__ import annotations

# The registry alias of the model users get by default (`src.enhance`, `mlflow models serve`).
CHAMPION_ALIAS = "champion"
