"""A real `mlflow models serve -m models:/zero-dce@champion` answering real HTTP requests.

The model is trained, evaluated and promoted into a temporary store exactly as the
pipeline does, then served with the local environment (no network) on a free port.
"""

import json
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from src.config import PromoteConfig
from src.infer import serving_payload as serving
from src.model.loading import load_keras_model
from src.tracking.promote import promote
from tests.support.servers import free_port, running, server_env


@pytest.fixture(scope="module")
def server(tiny):
    """The champion served on 127.0.0.1; yields the /invocations URL. Always stopped afterwards."""
    assert promote(tiny.run_id, PromoteConfig()).alias == "champion"
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/zero-dce@champion"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    env = server_env(MLFLOW_TRACKING_URI=tiny.tracking_uri)
    with running(command, f"http://127.0.0.1:{port}/ping", env, tiny.root / "serve.log", timeout_s=90):
        yield f"http://127.0.0.1:{port}/invocations"


def post(url: str, body: dict) -> requests.Response:
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=60)


def test_answers_images_of_any_size_with_the_models_output(tiny, server):
    model = load_keras_model(tiny.model_path)
    rng = np.random.default_rng(3)
    for shape in ((1, 17, 23, 3), (1, 40, 9, 3), (2, 5, 6, 3), (1, 1, 1, 3)):
        images = rng.random(shape).astype(np.float32) * 0.4
        answer = post(server, {"inputs": images.tolist()})
        assert answer.status_code == 200, answer.text
        predictions = np.asarray(answer.json()["predictions"], np.float32)
        assert predictions.shape == shape
        np.testing.assert_allclose(predictions, np.asarray(model(images)), atol=1e-5)


def test_the_documented_png_to_json_to_png_round_trip(tiny, server, tmp_path, capsys):
    pixels = (np.random.default_rng(4).random((13, 21, 3)) * 70).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    serving.main(["body", str(tmp_path / "photo.png")])
    body = capsys.readouterr().out
    answer = requests.post(server, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert answer.status_code == 200, answer.text
    (tmp_path / "answer.json").write_text(answer.text)
    serving.main(["image", str(tmp_path / "answer.json"), str(tmp_path / "enhanced.png")])

    enhanced = np.asarray(Image.open(tmp_path / "enhanced.png")).astype(np.int32)
    expected = np.asarray(load_keras_model(tiny.model_path)(pixels[None] / np.float32(255)))[0]
    assert enhanced.shape == (13, 21, 3)
    assert np.abs(enhanced - np.round(expected * 255)).max() <= 1


def test_a_wrong_shape_is_a_client_error_not_a_crash(server):
    answer = post(server, {"inputs": [[[0.1, 0.2, 0.3]]]})
    assert answer.status_code == 400
    assert "does not match expected shape" in answer.json()["message"]
