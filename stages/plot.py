"""DVC stage `plot`: loss-curve PNGs, a low / enhanced / ground-truth grid and a normal-light
input / output grid, logged to MLflow."""

import argparse
from pathlib import Path

from src.errors import cli_entry


@cli_entry
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--per-image", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--run-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--examples", type=int, default=6, help="rows in each image grid")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    # Imported once the arguments and params are checked, so a bad flag or key answers at
    # once: the modules below load TensorFlow and MLflow (seconds).
    from src.config import load_params

    params = load_params(args.params)
    from src.evaluate.figures import write_figures
    from src.tracking import runs as tracking

    paths = write_figures(args.history, args.per_image, args.model, args.split, args.out, args.examples)
    tracking.log_to_run(args.run_file, params.mlflow, artifacts=paths, artifact_dir="plots")
    print(f"wrote {len(paths)} figures to {args.out}")


if __name__ == "__main__":
    main()
