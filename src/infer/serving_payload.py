"""The wire format of `mlflow models serve` of the Zero-DCE model, and a CLI for request and answer.

The served model (`src.infer.image_model`) takes the photo's file, PNG or JPEG, base64
in MLflow's DataFrame JSON, and answers the enhanced photo in the same encoding:

    request  {"dataframe_records": [{"image": "<base64 of photo.jpg>"}]}
    answer   {"predictions": [{"image": "<base64 of the enhanced JPEG>"}]}
    error    {"error_code": "BAD_REQUEST", "message": "image: corrupt image (...)"} (HTTP 400)

`curl`, `base64` and `jq` do it all on Linux (docs/photos-and-serving.md); this helper does the same
anywhere Python runs and turns an error answer into its one-line message, where a
shell pipe would write the error JSON's "null" into the output image. Nothing here
imports MLflow or TensorFlow, so it starts at once:

    python -m src.infer.serving_payload body photo.jpg |
        curl -s -H 'Content-Type: application/json' --data-binary @- \\
            http://127.0.0.1:5001/invocations |
        python -m src.infer.serving_payload image - enhanced.jpg
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path

from src.errors import PipelineError, cli_entry
from src.files import atomic_path

IMAGE_COLUMN = "image"  # the model signature's one column, in and out
# The encodings served, by the first bytes of their files, with their usual suffixes.
MAGIC = {b"\x89PNG\r\n\x1a\n": (".png",), b"\xff\xd8\xff": (".jpg", ".jpeg")}


def suffix_of(data: bytes) -> str | None:
    """`.png` or `.jpg` for the bytes of such a file (by its signature bytes), else None."""
    return next((suffixes[0] for magic, suffixes in MAGIC.items() if data.startswith(magic)), None)


def request_body(data: bytes) -> str:
    """The JSON body that asks the server to enhance one image file (its bytes)."""
    encoded = base64.b64encode(data).decode("ascii")
    return json.dumps({"dataframe_records": [{IMAGE_COLUMN: encoded}]}, separators=(",", ":"))


def answer_image(text: str, where: str = "answer") -> bytes:
    """The enhanced image file of an `/invocations` answer; an error answer is its one-line message."""
    try:
        payload = json.loads(text)
    except ValueError:
        raise PipelineError(f"{where}: not JSON (is this the server's answer?)") from None
    if isinstance(payload, dict) and "message" in payload and "predictions" not in payload:
        raise PipelineError(f"{where}: the server refused the request: {payload['message']}")
    try:
        encoded = payload["predictions"][0][IMAGE_COLUMN]
        data = base64.b64decode(encoded)
    except (KeyError, IndexError, TypeError, binascii.Error):
        raise PipelineError(
            f"{where}: not an answer of the image model "
            f'(expected {{"predictions": [{{"{IMAGE_COLUMN}": "<base64>"}}]}})'
        ) from None
    if suffix_of(data) is None:
        raise PipelineError(f"{where}: the answer's image is neither PNG nor JPEG")
    return data


def _read_image_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a folder, not an image") from None
    if suffix_of(data) is None:
        raise PipelineError(f"{path}: not a PNG or JPEG file (the served model takes those two)")
    return data


def _write_image_file(path: Path, data: bytes, where: str) -> None:
    """Write the answer's bytes as they are, refusing a name that would call a JPEG `.png`."""
    suffixes = next(s for magic, s in MAGIC.items() if data.startswith(magic))
    if path.suffix.lower() not in suffixes:
        raise PipelineError(
            f"{where}: the answer is a {suffixes[0]} image; name the output {path.stem}{suffixes[0]}"
        )
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.infer.serving_payload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    body = commands.add_parser("body", help="print the JSON request body for a PNG or JPEG file")
    body.add_argument("image", type=Path)
    image = commands.add_parser("image", help="write the enhanced image of a JSON answer ('-': stdin)")
    image.add_argument("answer", type=Path)
    image.add_argument("output", type=Path)
    args = parser.parse_args(argv)

    if args.command == "body":
        sys.stdout.write(request_body(_read_image_file(args.image)))
        return
    where = "answer on stdin" if str(args.answer) == "-" else str(args.answer)
    try:
        text = sys.stdin.read() if str(args.answer) == "-" else args.answer.read_text()
    except FileNotFoundError:
        raise PipelineError(f"{args.answer}: file not found") from None
    _write_image_file(args.output, answer_image(text, where), where)


if __name__ == "__main__":
    main()
