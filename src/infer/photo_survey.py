"""What a model does to a folder of real photos, which have no ground truth: which photos it
changes and by how much, beside the same model with its shadow lift turned off (the exposure gate
alone), and a before / after grid.

    python -m src.infer.photo_survey PHOTO_DIR [PHOTO_DIR ...] --model models/model.keras \\
        --grid reports/plots/real_photos.jpg --summary reports/real_photos.json

A photo counts as unchanged when its mean brightness moves by less than 0.005. Each photo goes
through the whole-image fast path, as evaluate scores LOL.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from src.errors import PipelineError, cli_entry

UNCHANGED = 0.005  # |mean brightness out − in| below this: the model did nothing visible
WHITE = 1.0 - 0.5 / 255  # a value that rounds to 255 in 8 bits: clipped


def photo_paths(folders: list[Path]) -> list[Path]:
    from src.infer.photos import format_of

    paths = []
    for folder in folders:
        if not folder.is_dir():
            raise PipelineError(f"{folder}: not a folder of photos")
        paths += sorted(p for p in folder.iterdir() if format_of(p) is not None)
    if not paths:
        raise PipelineError(f"no photos in {', '.join(map(str, folders))}")
    return paths


def survey(enhancer, paths: list[Path]) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """One row per photo and method; the images, keyed by photo, for the grid."""
    from src.infer.photos import read_photo

    rows, images = [], {}
    for path in tqdm(paths, desc="photos", file=sys.stderr):
        image = read_photo(path).rgb
        strength = enhancer.strength_of(image)
        outputs = {"model": enhancer(image, strength)}
        if enhancer.light is not None:  # no gain, an unlit scene: the gated model the lift was added to
            outputs["gate_alone"] = enhancer(image, strength, np.zeros((*image.shape[:2], 1), np.float32))
        key = f"{path.parent.name}/{path.name}"
        images[key] = {"input": image, **outputs}
        for method, output in outputs.items():
            shift = float(output.mean() - image.mean())
            rows.append(
                {
                    "set": path.parent.name,
                    "photo": key,
                    "method": method,
                    "brightness_in": float(image.mean()),
                    "brightness_out": float(output.mean()),
                    "unchanged": abs(shift) < UNCHANGED,
                    "clipped_in_pct": float(np.mean(image >= WHITE) * 100),
                    "clipped_out_pct": float(np.mean(output >= WHITE) * 100),
                    "gate_strength": strength if strength is not None else 1.0,
                }
            )
    return pd.DataFrame(rows), images


def summarise(frame: pd.DataFrame) -> dict:
    """Per method, overall and per set: photos, how many unchanged, brightness and clipping."""

    def stats(group: pd.DataFrame) -> dict:
        return {
            "photos": len(group),
            "unchanged": int(group["unchanged"].sum()),
            "brightness_in": round(float(group["brightness_in"].mean()), 4),
            "brightness_out": round(float(group["brightness_out"].mean()), 4),
            "brightest_out": round(float(group["brightness_out"].max()), 4),
            "clipped_in_pct": round(float(group["clipped_in_pct"].mean()), 3),
            "clipped_out_pct": round(float(group["clipped_out_pct"].mean()), 3),
        }

    return {
        method: {"all": stats(group), **{name: stats(part) for name, part in group.groupby("set")}}
        for method, group in frame.groupby("method", sort=False)
    }


def draw_grid(frame: pd.DataFrame, images: dict, path: Path, count: int) -> Path:
    """`count` photos evenly spread over the input brightness, one row each: input, gate alone,
    the model. An even spread, not a pick of the best, so the grid shows the typical photo."""
    from src.evaluate.drawing import _grid

    model_rows = frame[frame["method"] == "model"].sort_values("brightness_in")
    picks = model_rows.iloc[np.unique(np.linspace(0, len(model_rows) - 1, count).round().astype(int))]
    rows = []
    for item in picks.itertuples(index=False):
        shown = images[item.photo]
        panels = [(shown["input"], f"{item.photo}: input (brightness {item.brightness_in:.2f})")]
        for method, title in (("gate_alone", "exposure gate alone"), ("model", "with the shadow lift")):
            if method in shown:
                panels.append((shown[method], f"{title} ({shown[method].mean():.2f})"))
        rows.append(panels)
    return _grid(rows, path)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("folders", type=Path, nargs="+", help="folders of photos (a set per folder)")
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"))
    parser.add_argument("--grid", type=Path, required=True, help="the before / after grid (.jpg or .png)")
    parser.add_argument("--summary", type=Path, required=True, help="the JSON summary")
    parser.add_argument("--examples", type=int, default=8, help="rows in the grid")
    args = parser.parse_args(argv)
    paths = photo_paths(args.folders)

    from src.files import atomic_write_text
    from src.infer.enhancer import Enhancer
    from src.model.loading import load_keras_model

    frame, images = survey(Enhancer(load_keras_model(args.model)), paths)
    summary = summarise(frame)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.summary, json.dumps(summary, indent=2) + "\n")
    draw_grid(frame, images, args.grid, args.examples)
    for method, sets in summary.items():
        s = sets["all"]
        print(f"{method}: {s['unchanged']} of {s['photos']} photos unchanged; brightness "
              f"{s['brightness_in']:.3f} -> {s['brightness_out']:.3f}; clipped {s['clipped_in_pct']:.2f} % "
              f"-> {s['clipped_out_pct']:.2f} %")  # fmt: skip


if __name__ == "__main__":
    main()
