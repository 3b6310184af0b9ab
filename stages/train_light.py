"""DVC stage `train_light`: the shadow network on synthetic shadows; its lit level and threshold (val)."""

import argparse
import json
from pathlib import Path

from src.errors import cli_entry


@cli_entry
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", type=Path, required=True, help="folder with train.csv and val.csv")
    parser.add_argument(
        "--model", type=Path, required=True, help="where to write the light gain .keras model"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="the fit's metrics JSON")
    parser.add_argument(
        "--grid", type=Path, required=True, help="val scores of every quantile and threshold (JSON)"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from src.config import load_params
    from src.preflight import check_light_fit

    params = load_params(args.params)
    check_light_fit(params, args.split, args.params)

    from src.stage_lock import held

    with held("train_light", "light fit"):
        from src.data.split import read_split
        from src.files import atomic_path, atomic_write_text
        from src.light.fit import fit_light

        train, val = read_split(args.split / "train.csv"), read_split(args.split / "val.csv")
        fit = fit_light(train, val, params.light, params.evaluate.mixed_light_factors, params.model.gate_band)
        with atomic_path(args.model) as tmp:  # a crash mid-save leaves the last good file
            fit.model.save(tmp)
        for path, values in ((args.metrics, fit.metrics), (args.grid, fit.grid)):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(values, indent=2) + "\n")
        metrics = fit.metrics
        print(
            f"light: lit level at quantile {metrics['reference_quantile']:g}, threshold "
            f"{metrics['threshold']:g}, chosen on {metrics['val_images']} val images: "
            f"mixed light {metrics['val_mixed_psnr']:.2f} dB, normal light "
            f"{metrics['val_normal_psnr_vs_input']:.2f} dB against the input"
        )


if __name__ == "__main__":
    main()
