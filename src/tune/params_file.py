"""The best trial as params: a params.yaml overlay file, the `dvc exp run` command that
trains with it, and writing its values into params.yaml itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import yaml
from ruamel.yaml import YAML

from src.config import load_params
from src.files import atomic_path, atomic_write_text


def best_params_document(study: optuna.Study) -> dict[str, Any]:
    """The best trial as a params.yaml overlay: `{section: {key: value}}`."""
    overlay: dict[str, dict[str, Any]] = {}
    for dotted, value in study.best_trial.params.items():
        section, key = dotted.split(".", 1)
        overlay.setdefault(section, {})[key] = float(f"{value:.4g}")
    return overlay


def exp_run_command(overlay: dict[str, dict[str, Any]]) -> str:
    flags = " ".join(
        f"-S {section}.{key}={value}" for section, values in overlay.items() for key, value in values.items()
    )
    return f"dvc exp run {flags}"


def write_best_params(study: optuna.Study, path: Path) -> dict[str, dict[str, Any]]:
    trial = study.best_trial
    overlay = best_params_document(study)
    header = (
        f"# Best trial of Optuna study {study.study_name!r}: trial {trial.number}, "
        f"validation score {trial.value:.3f} (PSNR {trial.user_attrs.get('val_psnr', float('nan')):.3f} dB, "
        f"SSIM {trial.user_attrs.get('val_ssim', float('nan')):.3f}).\n"
        f"# Train the pipeline with it: {exp_run_command(overlay)}\n"
        "# or: python -m src.tune --apply-only (writes these values into params.yaml, then `dvc repro`)\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, header + yaml.safe_dump(overlay, sort_keys=False))
    return overlay


def apply_to_params(overlay: dict[str, dict[str, Any]], params_path: Path) -> None:
    """Write values into params.yaml in place, keeping its comments and order (ruamel)."""
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    document = yaml_rt.load(params_path.read_text())
    for section, values in overlay.items():
        for key, value in values.items():
            document[section][key] = value
    with atomic_path(params_path) as tmp:
        with tmp.open("w") as handle:
            yaml_rt.dump(document, handle)
        load_params(tmp)  # never write a params.yaml the pipeline would reject
