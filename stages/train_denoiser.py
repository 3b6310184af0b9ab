"""DVC stage `train_denoiser`: fit the denoiser on the trained curves; write the shipped model
(curves, gate, denoiser and, with light.enabled, the shadow lift of the train_light stage)."""

import argparse
import json
from pathlib import Path

from src.errors import cli_entry


@cli_entry
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--curves", type=Path, required=True, help="the train stage's curves model")
    parser.add_argument("--light", type=Path, required=True, help="the train_light stage's gain model")
    parser.add_argument("--split", type=Path, required=True, help="folder with val.csv")
    parser.add_argument("--run-file", type=Path, required=True, help="JSON naming the MLflow run")
    parser.add_argument("--model", type=Path, required=True, help="where to write the shipped .keras model")
    parser.add_argument("--metrics", type=Path, required=True, help="the fit's metrics JSON")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from src.config import load_params
    from src.preflight import check_denoiser_fit

    params = load_params(args.params)
    check_denoiser_fit(params, args.split, args.params)

    from src.stage_lock import held

    # One at a time per project, whether started by `dvc repro` or by hand (src/stage_lock.py).
    with held("train_denoiser", "denoiser fit"):
        from src.data.split import read_split
        from src.files import atomic_write_text
        from src.model.loading import load_keras_model
        from src.tracking import runs as tracking
        from src.train.denoiser_fit import STRENGTH_NAMES, curve_cases, fit_denoiser, with_denoiser
        from src.train.run import save_model

        cfg = params.denoiser
        curves = load_keras_model(args.curves)
        val = read_split(args.split / "val.csv")
        pairs = val.head(cfg.fit_images) if cfg.fit_images else val
        fit = fit_denoiser(curve_cases(curves, pairs), cfg)
        model = with_denoiser(curves, fit.strengths)
        if params.light.enabled:
            from src.light.compose import with_light

            model = with_light(model, load_keras_model(args.light), params.light.scale_factor)
        save_model(model, args.model)
        chosen = dict(zip(STRENGTH_NAMES, fit.strengths or (), strict=False))
        metrics = {"kind": cfg.kind, **chosen, **{k: round(v, 4) for k, v in fit.scores.items()}}
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
        s = fit.scores
        strengths = ", ".join(f"{name} {value:g}" for name, value in chosen.items())
        line = (
            f"({cfg.kind}{': ' + strengths if strengths else ''}), "
            f"fitted on {len(pairs)} val pairs: "
            f"{s['curves_val_psnr']:.2f} dB / {s['curves_val_ssim']:.3f} for the curves alone, "
            f"{s['val_psnr']:.2f} dB / {s['val_ssim']:.3f} finished"
        )
        # The note's first line is its section's heading (`tracking.with_section`), so it names no
        # value: a rerun with other denoiser params then replaces the section instead of adding one.
        tracking.log_to_run(
            args.run_file,
            params.mlflow,
            metrics={f"denoiser_{k}": float(v) for k, v in metrics.items() if k != "kind"},
            note=f"**Denoiser**\n\nDenoiser {line}",
            model=model,
        )
        print(f"Denoiser {line}")


if __name__ == "__main__":
    main()
