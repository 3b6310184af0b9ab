"""DVC stage `evaluate`: the trained model and the baselines at full resolution on the test split,
and the model on eval15's normal-light images and on their mixed-light versions."""

import argparse
import json
import shutil
from pathlib import Path

from src.errors import cli_entry

# What `dvc metrics show` reads: one small file per method, all with the same keys, so DVC prints one
# row per method under a handful of columns (the full summary, in --metrics, has ~60 values).
HEADLINE_SCOPES = ("eval15", "test")
HEADLINE = ("psnr", "ssim")


def headline_metrics(summary: dict) -> dict[str, dict]:
    """Per method: PSNR and SSIM on eval15 and test, PSNR against a normal-light input and on
    mixed light where the method was run on those, and the model's inference time."""
    methods: dict[str, dict] = {}
    for scope in HEADLINE_SCOPES:
        for method, values in summary[scope].items():
            methods.setdefault(method, {})[scope] = {k: values[k] for k in HEADLINE}
    for method, values in summary["normal_light"].items():
        methods.setdefault(method, {})["normal_light"] = {"psnr_vs_input": values["psnr_vs_input"]}
    for method, values in summary["mixed_light"].items():
        methods.setdefault(method, {})["mixed_light"] = {k: values[k] for k in HEADLINE}
    methods["zero_dce"]["inference_ms_600x400"] = summary["inference_ms_600x400"]
    methods["curves_tv"]["tv_ms_600x400"] = summary["tv_ms_600x400"]
    return methods


def write_headline(summary: dict, folder: Path) -> None:
    """`folder/<method>.json` for each method; nothing else stays in the folder."""
    from src.files import atomic_write_text

    shutil.rmtree(folder, ignore_errors=True)
    for method, values in headline_metrics(summary).items():
        atomic_write_text(folder / f"{method}.json", json.dumps(values, indent=2) + "\n")


def evaluation_note(summary: dict) -> str:
    """The section of the run's MLflow description with the evaluation's headline numbers."""
    lines = ["**Evaluation** at full resolution (PSNR dB / SSIM):", ""]
    for scope in HEADLINE_SCOPES:
        cells = ", ".join(f"{m} {v['psnr']:.2f} / {v['ssim']:.3f}" for m, v in summary[scope].items())
        lines.append(f"- {scope}: {cells}")
    lines.append(
        f"- normal-light input: {summary['normal_light']['zero_dce']['psnr_vs_input']:.1f} dB against "
        f"the input; mixed light {summary['mixed_light']['zero_dce']['psnr']:.2f} dB "
        f"(input {summary['mixed_light']['input']['psnr']:.2f} dB); "
        f"{summary['inference_ms_600x400']} ms per 600x400 image "
        f"(skimage TV: {summary['tv_ms_600x400']} ms)"
    )
    return "\n".join(lines)


@cli_entry
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the shipped model")
    parser.add_argument("--curves", type=Path, required=True, help="the same model without its denoiser")
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--run-file", type=Path, required=True)
    parser.add_argument("--per-image", type=Path, required=True, help="per-image CSV")
    parser.add_argument(
        "--metrics", type=Path, required=True, help="the full summary JSON (logged to MLflow)"
    )
    parser.add_argument(
        "--headline", type=Path, required=True, help="folder of per-method JSONs for `dvc metrics show`"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    # Imported once the arguments and params are checked, so a bad flag or key answers at
    # once: the modules below load TensorFlow and MLflow (seconds).
    from src.config import load_params
    from src.preflight import check_evaluation

    params = load_params(args.params)
    check_evaluation(params, args.split, args.params)

    from src.stage_lock import held

    # One at a time per project, whether started by `dvc repro` or by hand (src/stage_lock.py).
    with held("evaluate", "evaluation"):
        from src.data.split import read_split
        from src.evaluate.scoring import evaluate, flat_metrics
        from src.files import atomic_write_text
        from src.model.loading import load_keras_model
        from src.tracking import runs as tracking

        model = load_keras_model(args.model)
        per_image, summary = evaluate(
            model,
            load_keras_model(args.curves),
            read_split(args.split / "test.csv"),
            read_split(args.split / "train.csv"),
            read_split(args.split / "val.csv"),
            params.evaluate,
        )
        args.per_image.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.per_image, per_image.to_csv(index=False, float_format="%.6g"))
        atomic_write_text(args.metrics, json.dumps(summary, indent=2) + "\n")
        write_headline(summary, args.headline)
        tracking.log_to_run(
            args.run_file,
            params.mlflow,
            metrics=flat_metrics(summary),
            artifacts=[args.per_image, args.metrics],
            artifact_dir="evaluation",
            note=evaluation_note(summary),
        )
        for scope in ("eval15", "test"):
            line = ", ".join(f"{m} {v['psnr']:.2f} dB / {v['ssim']:.3f}" for m, v in summary[scope].items())
            print(f"{scope}: {line}")
        print(f"gamma {summary['gamma']}; TV weight {summary['tv_weight']} (fitted on val)")
        for method, v in summary["normal_light"].items():
            print(
                f"normal light, {method}: {v['psnr_vs_input']:.2f} dB vs input, brightness "
                f"{v['brightness_in']:.3f} -> {v['brightness']:.3f}, {v['clipped_pct']:.2f}% clipped"
            )
        for method, v in summary["mixed_light"].items():
            print(
                f"mixed light, {method}: {v['psnr']:.2f} dB / {v['ssim']:.3f}; lit part "
                f"{v['lit_psnr_vs_input']:.1f} dB vs input (brightness {v['lit_brightness_shift']:+.3f}), "
                f"darkened part {v['dark_psnr']:.2f} dB"
            )
        print(
            f"{summary['inference_ms_600x400']} ms per 600x400 image; "
            f"skimage TV {summary['tv_ms_600x400']} ms"
        )


if __name__ == "__main__":
    main()
