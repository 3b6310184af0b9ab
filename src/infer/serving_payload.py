"""Request bodies for, and images from, `mlflow models serve` of the Zero-DCE model.

The served model is the Keras flavour with a tensor signature of float32
`(-1, -1, -1, 3)`: the body is `{"inputs": <nested list of shape [1, H, W, 3]>}`
with RGB values in [0, 1], and the answer is `{"predictions": <same shape>}`.
JSON of floats is bulky (about 10 bytes per value: ~7 MB for a 600×400 photo) but
needs no custom model code, so any MLflow client or plain `curl` can call it.

    python -m src.infer.serving_payload body photo.png > body.json
    curl -s -H 'Content-Type: application/json' --data-binary @body.json \\
        http://127.0.0.1:5001/invocations > answer.json
    python -m src.infer.serving_payload image answer.json enhanced.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from src.data.images import write_png
from src.errors import PipelineError, cli_entry
from src.infer.photos import read_photo

DECIMALS = 6  # enough to round-trip every 8- and 16-bit level; fewer digits keep the JSON small


def request_body(rgb: np.ndarray) -> dict[str, object]:
    """`{"inputs": [image]}` for one HxWx3 float image in [0, 1]."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {rgb.shape}")
    return {"inputs": np.round(rgb.astype(np.float64), DECIMALS)[None].tolist()}


def response_image(payload: dict[str, object], where: str = "response") -> np.ndarray:
    """The first enhanced image of an `/invocations` answer, float32 HxWx3 in [0, 1]."""
    try:
        predictions = np.asarray(payload["predictions"], dtype=np.float32)
    except (KeyError, TypeError, ValueError):
        raise PipelineError(f"{where}: not an /invocations answer (expected a 'predictions' array)") from None
    if predictions.ndim != 4 or predictions.shape[-1] != 3:
        raise PipelineError(
            f"{where}: expected predictions of shape [N, H, W, 3], got {list(predictions.shape)}"
        )
    return np.clip(predictions[0], 0.0, 1.0)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.infer.serving_payload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    body = commands.add_parser("body", help="print the JSON request body for an image")
    body.add_argument("image", type=Path)
    image = commands.add_parser("image", help="write the enhanced image of a JSON answer as PNG")
    image.add_argument("answer", type=Path)
    image.add_argument("output", type=Path)
    args = parser.parse_args(argv)

    if args.command == "body":
        json.dump(request_body(read_photo(args.image).rgb), sys.stdout, separators=(",", ":"))
        return
    try:
        payload = json.loads(args.answer.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{args.answer}: file not found") from None
    except ValueError:
        raise PipelineError(f"{args.answer}: not JSON") from None
    write_png(args.output, response_image(payload, str(args.answer)))


if __name__ == "__main__":
    main()
