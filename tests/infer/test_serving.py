"""A real `mlflow models serve -m models:/zero-dce@champion` answering real HTTP requests.

The model is trained, evaluated and promoted into a temporary store exactly as the
pipeline does, then served with the local environment (no network) on a free port,
from the store's folder: the server imports `src` from the code packaged with the
model, not from this checkout.
"""

import base64
import io
import json
import math
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from PIL import Image

from src.config import PromoteConfig
from src.infer import serving_payload as serving
from src.model.loading import load_keras_model
from src.tracking.promote import promote
from tests.support.data import FIXTURE_DATASET
from tests.support.servers import free_port, running, server_env

JSON = {"Content-Type": "application/json"}
# JSON of one base64 string: `{"dataframe_records":[{"image":"..."}]}` is 36 bytes around it.
ENVELOPE = 64


@pytest.fixture(scope="module")
def champion(tiny) -> str:
    """The tiny model registered as `zero-dce` and promoted, as the pipeline's promote stage does."""
    assert promote(tiny.run_id, PromoteConfig()).alias == "champion"
    return "models:/zero-dce@champion"


@pytest.fixture(scope="module")
def server(tiny, champion):
    """The champion served on 127.0.0.1; yields the /invocations URL. Always stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", champion]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    env = server_env(MLFLOW_TRACKING_URI=tiny.tracking_uri)
    with running(command, f"http://127.0.0.1:{port}/ping", env, tiny.root / "serve.log", timeout_s=240):
        yield f"http://127.0.0.1:{port}/invocations"


@pytest.fixture(scope="module")
def keras_model(tiny):
    return load_keras_model(tiny.model_path)


def photo(size: tuple[int, int] | None = None, name: str = "eval15/low/1.png") -> Image.Image:
    """A real LOL low-light photo (120×80), resized to `size` (width, height) if given."""
    image = Image.open(FIXTURE_DATASET / name).convert("RGB")
    return image.resize(size, Image.Resampling.BICUBIC) if size else image


def file_bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int32)


def expected(keras_model, decoded: np.ndarray) -> np.ndarray:
    """The Keras model's own output on the decoded input, as the 8-bit levels a file holds."""
    out = np.asarray(keras_model(decoded[None].astype(np.float32) / np.float32(255)))[0]
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.int32)


def enhance(url: str, data: bytes) -> tuple[bytes, int, int]:
    """POST one image file; returns (the answer's image file, request bytes, answer bytes)."""
    body = serving.request_body(data)
    answer = requests.post(url, data=body, headers=JSON, timeout=120)
    assert answer.status_code == 200, answer.text
    return serving.answer_image(answer.text), len(body), len(answer.content)


def base64_size(n: int) -> int:
    return 4 * math.ceil(n / 3)


@pytest.mark.server
def test_png_in_png_out_of_any_size_with_the_models_pixels(server, keras_model):
    # 601×397 is wider than one 512 px tile: the server enhances it in overlapping tiles.
    for size in (None, (77, 53), (1, 1), (601, 397)):
        data = file_bytes(photo(size), "PNG")
        out, request_bytes, answer_bytes = enhance(server, data)
        assert out.startswith(b"\x89PNG"), "PNG in, PNG out"
        served, source = pixels(out), pixels(data)
        assert served.shape == source.shape
        assert np.abs(served - expected(keras_model, source)).max() <= 1
        # About the size of the files: base64 (4/3), MLflow's newline every 76 characters, the JSON.
        assert base64_size(len(data)) <= request_bytes <= base64_size(len(data)) + ENVELOPE
        assert answer_bytes <= base64_size(len(out)) * (1 + 2 / 76) + ENVELOPE


@pytest.mark.server
def test_jpeg_in_jpeg_out_within_jpeg_quality_95(server, keras_model):
    for size in ((120, 80), (601, 397)):
        data = file_bytes(photo(size, "eval15/low/146.png"), "JPEG", quality=90)
        out, request_bytes, _ = enhance(server, data)
        assert out.startswith(b"\xff\xd8\xff"), "JPEG in, JPEG out"
        served, source = pixels(out), pixels(data)
        assert served.shape == source.shape
        error = np.abs(served - expected(keras_model, source))
        # Quality 95 with 4:2:0 chroma: about a level on average, a few at colour edges.
        assert error.mean() < 1.5 and np.percentile(error, 99) <= 8, (error.mean(), error.max())
        assert request_bytes <= base64_size(len(data)) + ENVELOPE


@pytest.mark.server
def test_one_request_of_several_images_answers_each_in_its_own_encoding(server):
    png, jpeg = file_bytes(photo(), "PNG"), file_bytes(photo(), "JPEG", quality=95)
    rows = [{"image": base64.b64encode(data).decode()} for data in (png, jpeg)]
    answer = requests.post(server, data=json.dumps({"dataframe_records": rows}), headers=JSON, timeout=120)
    assert answer.status_code == 200, answer.text
    images = [base64.b64decode(p["image"]) for p in answer.json()["predictions"]]
    assert [data[:3] for data in images] == [b"\x89PN", b"\xff\xd8\xff"]


@pytest.mark.server
def test_dataframe_split_and_inputs_formats_work_too(server):
    data = file_bytes(photo((33, 21)), "PNG")
    encoded = base64.b64encode(data).decode()
    for body in (
        {"dataframe_split": {"columns": ["image"], "data": [[encoded]]}},
        {"inputs": {"image": [encoded]}},
    ):
        answer = requests.post(server, data=json.dumps(body), headers=JSON, timeout=120)
        assert answer.status_code == 200, answer.text
        assert pixels(serving.answer_image(answer.text)).shape == (21, 33, 3)


@pytest.mark.server
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "image: corrupt image"),  # a truncated PNG: filled in below
        (b"hello, not an image", "image: not a PNG or JPEG file"),
        (b"GIF89a\x01\x00\x01\x00", "image: not a PNG or JPEG file"),
    ],
)
def test_a_bad_image_is_a_400_with_a_one_line_message(server, data, message):
    if data is None:
        data = file_bytes(photo(), "PNG")[:600]
    answer = requests.post(server, data=serving.request_body(data), headers=JSON, timeout=60)
    assert answer.status_code == 400
    error = answer.json()
    assert error["message"].startswith(message), error["message"]
    assert "\n" not in error["message"] and "stack_trace" not in error


@pytest.mark.server
def test_a_float_tensor_is_refused_with_a_pointer_to_the_keras_network(server):
    """Decided: the served model speaks images only (see src.infer.image_model)."""
    images = np.random.default_rng(3).random((1, 5, 6, 3)).astype(np.float32)
    answer = requests.post(server, data=json.dumps({"inputs": images.tolist()}), headers=JSON, timeout=60)
    assert answer.status_code == 400
    assert "not an image file" in answer.json()["message"]


@pytest.mark.server
def test_the_documented_cli_round_trip_and_its_error_line(server, tmp_path, capsys, monkeypatch):
    data = file_bytes(photo(), "JPEG", quality=92)
    (tmp_path / "photo.jpg").write_bytes(data)
    serving.main(["body", str(tmp_path / "photo.jpg")])
    body = capsys.readouterr().out
    assert json.loads(body) == json.loads(serving.request_body(data))
    answer = requests.post(server, data=body, headers=JSON, timeout=60)
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer.text))
    serving.main(["image", "-", str(tmp_path / "enhanced.jpg")])
    assert (tmp_path / "enhanced.jpg").read_bytes() == serving.answer_image(answer.text)

    (tmp_path / "answer.json").write_text(answer.text)
    with pytest.raises(SystemExit):
        serving.main(["image", str(tmp_path / "answer.json"), str(tmp_path / "enhanced.png")])
    assert "the answer is a .jpg image; name the output enhanced.jpg" in capsys.readouterr().err

    refused = requests.post(server, data=serving.request_body(b"\xff\xd8\xffjunk"), headers=JSON, timeout=60)
    (tmp_path / "refused.json").write_text(refused.text)
    with pytest.raises(SystemExit):
        serving.main(["image", str(tmp_path / "refused.json"), str(tmp_path / "x.jpg")])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the server refused the request: image: not a readable image" in err[0]
    assert not (tmp_path / "x.jpg").exists()


def test_the_registered_model_carries_its_code_and_signature(champion, tmp_path):
    folder = Path(mlflow.artifacts.download_artifacts(champion, dst_path=str(tmp_path)))
    for part in ("served_model.py", "code/src/infer/image_model.py", "code/src/infer/enhancer.py"):
        assert (folder / part).is_file(), part
    info = mlflow.models.get_model_info(champion)
    assert info.signature.inputs.to_dict() == [{"type": "binary", "name": "image", "required": True}]
    assert info.signature.outputs.to_dict() == info.signature.inputs.to_dict()


@pytest.mark.server
def test_the_server_prints_no_progress_bar_per_request(tiny, server):
    """Keras `predict` drew a bar per request in the log; the fast path calls no `predict`."""
    log = (tiny.root / "serve.log").read_text()
    assert "/step" not in log and "━━" not in log
