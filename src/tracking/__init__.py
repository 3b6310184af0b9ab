"""MLflow: runs (runs.py) and the model registry (promote.py).

This file stays free of heavy imports: `src.infer.enhance` reads these names before it
knows whether it needs MLflow at all.
"""

from __future__ import annotations

import os

from src.config import MlflowConfig

# The registry alias of the model users get by default (`src.enhance`, `mlflow models serve`).
CHAMPION_ALIAS = "champion"


def tracking_uri(cfg: MlflowConfig | None) -> str | None:
    """Where MLflow runs go: `MLFLOW_TRACKING_URI` wins over params (MLflow's own convention for
    a shared server, so a team logs there without editing params.yaml); None leaves MLflow its
    default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (cfg.tracking_uri if cfg is not None else None)
