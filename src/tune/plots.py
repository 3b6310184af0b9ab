"""The study's plots, as PNGs for MLflow and the tune stage's outputs."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import optuna


def save_study_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Optimisation history and parameter importances as PNGs (importances need ≥ 2 trials)."""
    # matplotlib is heavy and only needed once the trials are done.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    plots = {"optimization_history.png": optuna_plots.plot_optimization_history}
    if len(complete) >= 2:
        plots["param_importances.png"] = optuna_plots.plot_param_importances
    for name, draw in plots.items():
        try:
            axes = draw(study)
        except (ValueError, RuntimeError) as err:
            print(f"tune: skipped {name} ({err})", file=sys.stderr)
            continue
        figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
        figure.savefig(out_dir / name, dpi=100, bbox_inches="tight")
        plt.close(figure)
        paths.append(out_dir / name)
    return paths
