"""The team setup: one `mlflow server` with a PostgreSQL backend store and proxied artifacts
(`--artifacts-destination` on a local folder), which training, promotion, `src.enhance` and
`mlflow models serve` all reach through MLFLOW_TRACKING_URI alone.

The server is the session's (`tracking_server` in tests/conftest.py); this module trains its own
tiny model into it and uses the registered model name `zero-dce`, which no other test registers
there.
"""

import subprocess
import sys

import mlflow
import pytest
import requests

from src.infer import serving_payload as serving
from src.infer.enhance import main as enhance
from tests.support.data import FIXTURE_DATASET, REPO_ROOT
from tests.support.models import tiny_model_store
from tests.support.servers import free_port, running, server_env

pytestmark = [pytest.mark.server, pytest.mark.postgres]
PHOTO = FIXTURE_DATASET / "eval15" / "low" / "1.png"
CHAMPION = "models:/zero-dce@champion"


@pytest.fixture(scope="module")
def remote_tiny(tracking_server, tmp_path_factory):
    """The tiny model trained and evaluated as the pipeline does, with MLFLOW_TRACKING_URI set to
    the server (and the working directory in a folder of its own, where nothing should appear)."""
    with tiny_model_store(tmp_path_factory.mktemp("remote-client"), tracking_server.url) as model:
        yield model


def test_train_promote_enhance_and_serve_through_a_tracking_server_on_postgres(
    remote_tiny, tracking_server, postgres, tmp_path
):
    model, store = remote_tiny, tracking_server.backend_store_uri
    # `python -m src.promote` with MLFLOW_TRACKING_URI=http://… registers through the server.
    command = [sys.executable, "-m", "src.promote", "--run-id", model.run_id]
    command += ["--params", str(model.params_file("zero-dce"))]
    env = server_env(MLFLOW_TRACKING_URI=tracking_server.url)
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"zero-dce v1 (run {model.run_id[:8]}): ")
    assert done.stdout.strip().endswith("no champion yet -> champion")

    # Artifacts went through the server into its destination folder, not to a client-side path.
    run = mlflow.MlflowClient().get_run(model.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    assert not (model.root / "mlruns").exists(), "the client wrote artifacts itself"
    experiment = run.info.experiment_id
    logged = {
        p.relative_to(tracking_server.artifacts).parts[:2] for p in tracking_server.artifacts.rglob("*")
    }
    assert (experiment, "models") in logged, "the logged model's files are not in --artifacts-destination"
    model_files = {p.name for p in (tracking_server.artifacts / experiment / "models").rglob("*")}
    assert {"MLmodel", "served_model.py", "model.keras"} <= model_files, sorted(model_files)

    # Runs, versions and aliases are rows of the PostgreSQL database behind the server.
    rows = postgres.query(store, "SELECT status FROM runs WHERE run_uuid = %s", (model.run_id,))
    assert rows == [("FINISHED",)]
    metric = "test_zero_dce_psnr"
    rows = postgres.query(
        store, "SELECT value FROM metrics WHERE run_uuid = %s AND key = %s", (model.run_id, metric)
    )
    assert rows and rows[0][0] == pytest.approx(run.data.metrics[metric]), "the evaluation's metrics"
    rows = postgres.query(store, "SELECT version, run_id FROM model_versions WHERE name = 'zero-dce'")
    assert rows == [(1, model.run_id)]
    rows = postgres.query(
        store, "SELECT alias, version FROM registered_model_aliases WHERE name = 'zero-dce'"
    )
    assert rows == [("champion", 1)]

    # `src.enhance --model models:/zero-dce@champion` downloads the model through the server.
    assert enhance([str(PHOTO), "--output", str(tmp_path / "enhanced"), "--model", CHAMPION]) == 0
    enhanced = (tmp_path / "enhanced" / PHOTO.name).read_bytes()

    # So does `mlflow models serve`, from a folder with nothing of the project in it.
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    env = server_env(MLFLOW_TRACKING_URI=tracking_server.url)
    (tmp_path / "serve").mkdir()
    ping, url = f"http://127.0.0.1:{port}/ping", f"http://127.0.0.1:{port}/invocations"
    with running(command, ping, env, tmp_path / "serve.log", timeout_s=240, cwd=tmp_path / "serve"):
        body = serving.request_body(PHOTO.read_bytes())
        answer = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    assert serving.answer_image(answer.text) == enhanced, "the server's file is the one src.enhance writes"
