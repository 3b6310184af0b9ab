"""Promotion against a real temporary MLflow store: champion, challenger, take-over, reruns, errors.

One tiny model is trained and evaluated for the whole module; further "retrained" models are
new runs holding the same network with chosen scores. Each test uses its own registered model
name, so the tests share the store without sharing a registry history.
"""

import contextlib
import json
import threading

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

from src.config import PromoteConfig
from src.errors import PipelineError
from src.tracking import promote as promotion
from src.tracking import registry
from tests.support.models import log_copy
from tests.support.pipeline import use_store

METRIC = "test_zero_dce_psnr"


def cfg(name: str, **overrides: object) -> PromoteConfig:
    return PromoteConfig(model_name=name, **overrides)


def registry_state(name: str) -> tuple[dict, list]:
    """Aliases and every version's tags: what a no-op rerun must leave exactly as it was."""
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name = '{name}'")
    return (
        dict(client.get_registered_model(name).aliases),
        sorted((v.version, v.run_id, sorted(v.tags.items())) for v in versions),
    )


def test_first_champion_then_challenger_then_takeover_and_reruns_change_nothing(tiny):
    name = "zd-sequence"
    first_value = mlflow.MlflowClient().get_run(tiny.run_id).data.metrics[METRIC]

    first = promotion.promote(tiny.run_id, cfg(name))
    assert (first.version, first.alias, first.created, first.changed) == ("1", "champion", True, True)
    assert "no champion yet" in first.reason
    tags = mlflow.MlflowClient().get_model_version(name, "1").tags
    assert float(tags[METRIC]) == pytest.approx(first_value, rel=1e-5)
    assert tags["git_commit"] and tags["data_version"] and tags["run_id"] == tiny.run_id
    assert "eval15_zero_dce_psnr" in tags and "test_zero_dce_ssim" in tags

    worse_run = log_copy(tiny, {METRIC: first_value - 1.0})
    worse = promotion.promote(worse_run, cfg(name))
    assert (worse.version, worse.alias, worse.incumbent_version) == ("2", "challenger", "1")
    assert f"{METRIC} {first_value - 1:.4g} < champion v1 {first_value:.4g} -> challenger" in worse.reason

    better_run = log_copy(tiny, {METRIC: first_value + 1.0})
    better = promotion.promote(better_run, cfg(name))
    assert (better.version, better.alias) == ("3", "champion")
    assert f"> champion v1 {first_value:.4g} -> champion" in better.reason
    assert dict(mlflow.MlflowClient().get_registered_model(name).aliases) == {"champion": 3, "challenger": 2}

    before = registry_state(name)
    for run_id, alias in ((better_run, "champion"), (worse_run, "challenger")):
        again = promotion.promote(run_id, cfg(name))
        assert (again.alias, again.created, again.changed) == (alias, False, False)
        assert again.reason.endswith("(unchanged)") and "already registered" in again.reason
    assert registry_state(name) == before, "no duplicate version, no alias or tag rewritten"


def test_a_tie_keeps_the_incumbent(tiny):
    name = "zd-tie"
    promotion.promote(log_copy(tiny, {METRIC: 15.0}), cfg(name))
    tie = promotion.promote(log_copy(tiny, {METRIC: 15.0}), cfg(name))
    assert tie.alias == "challenger" and "a tie keeps the champion" in tie.reason
    assert mlflow.MlflowClient().get_registered_model(name).aliases["champion"] == 1


def test_lower_is_better_metrics_compare_the_other_way(tiny):
    name = "zd-lower"
    settings = cfg(name, metric="val_total_loss", higher_is_better=False)
    promotion.promote(log_copy(tiny, {"val_total_loss": 2.0}), settings)
    assert promotion.promote(log_copy(tiny, {"val_total_loss": 3.0}), settings).alias == "challenger"
    lower = promotion.promote(log_copy(tiny, {"val_total_loss": 1.5}), settings)
    assert lower.alias == "champion" and "(lower is better)" in lower.reason


def test_cli_force_promotes_a_worse_model_prints_why_and_writes_the_result(tiny, capsys):
    name = "zd-force"
    params = tiny.params_file(name)
    promotion.main(["--run-id", log_copy(tiny, {METRIC: 20.0}), "--params", str(params)])
    worse_run = log_copy(tiny, {METRIC: 10.0})
    promotion.main(["--run-id", worse_run, "--params", str(params)])
    capsys.readouterr()

    result = tiny.root / "promote.json"
    promotion.main(["--run-id", worse_run, "--force", "--params", str(params), "--result", str(result)])
    line = capsys.readouterr().out.strip()
    assert line == (
        f"{name} v2 (run {worse_run[:8]}, already registered): "
        f"{METRIC} 10 < champion v1 20, --force -> champion"
    )
    saved = json.loads(result.read_text())
    assert saved["alias"] == "champion" and saved["forced"] and saved["incumbent_version"] == "1"
    assert dict(mlflow.MlflowClient().get_registered_model(name).aliases) == {"champion": 2}, (
        "the new champion no longer carries the challenger alias"
    )


def test_the_pipeline_run_file_is_the_default_input_and_the_champion_loads_for_enhancement(tiny):
    name = "zd-runfile"
    promotion.main(["--run-file", str(tiny.run_file), "--params", str(tiny.params_file(name))])
    from src.infer.enhance import load_model
    from src.model.loading import load_keras_model

    served = load_model(f"models:/{name}@champion")
    image = np.random.default_rng(0).random((1, 9, 13, 3)).astype(np.float32)
    expected = load_keras_model(tiny.model_path)(image)
    np.testing.assert_allclose(np.asarray(served(image)), np.asarray(expected), atol=1e-6)


def test_a_run_without_the_metric_is_a_one_line_error_naming_both(tiny, capsys):
    bare = log_copy(tiny, {"best_val_psnr": 12.0})
    with pytest.raises(PipelineError, match=f"run {bare} has no metric '{METRIC}'"):
        promotion.promote(bare, cfg("zd-bare"))
    with pytest.raises(SystemExit) as exit_info:
        promotion.main(["--run-id", "0" * 32, "--params", str(tiny.params_file("zd-bare"))])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: MLflow run {'0' * 32} is not in the store") and "\n" not in err


def bare_run(folder, metrics: dict[str, float]) -> str:
    """A finished run with a stand-in `model` artifact: registering only records where the model
    is, so the race below needs no trained network (and no TensorFlow)."""
    stand_in = folder / "stand-in" / "model"
    stand_in.mkdir(parents=True)
    (stand_in / "MLmodel").write_text("stand-in for a logged model\n")
    mlflow.set_experiment("promote-race")
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(stand_in), artifact_path="model")
    return run.info.run_id


@pytest.mark.parametrize(
    ("registered", "interleaving"),
    [(False, "both create, then both look"), (True, "creates and looks overlap")],
    ids=["first promotion of the model", "model already registered"],
)
def test_two_promotions_of_one_run_at_once_leave_one_version(tmp_path, monkeypatch, registered, interleaving):
    """Two promotions (own clients, own threads, one sqlite store) both search before either
    creates: the race that search-then-create loses every time. Exactly one version survives,
    both report it, and only one says it created it; racing to create the registered model
    itself is no error either."""
    use_store(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # MLflow puts ./mlruns beside the store
    run_id = bare_run(tmp_path, {METRIC: 20.0})
    name = "zd-race"
    if registered:
        mlflow.MlflowClient().create_registered_model(name)
    together, aliasing = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=2)

    class RacingClient(mlflow.MlflowClient):
        def create_model_version(self, *args, **kwargs):
            together.wait()  # both searched and found nothing
            version = super().create_model_version(*args, **kwargs)
            if interleaving == "both create, then both look":
                together.wait()
            return version

        def set_registered_model_alias(self, *args, **kwargs):
            # Both saw no champion: set it at the same moment too (the store's read-then-insert).
            # Only if both get here; one that finds the alias already set does not.
            with contextlib.suppress(threading.BrokenBarrierError):
                aliasing.wait()
            return super().set_registered_model_alias(*args, **kwargs)

    decisions, errors = [], []

    def promote() -> None:
        try:
            decisions.append(promotion.promote(run_id, cfg(name), client=RacingClient()))
        except BaseException as err:  # reported from the test's own thread, below
            errors.append(err)
            together.abort()

    threads = [threading.Thread(target=promote) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
    assert [(v.version, v.run_id) for v in versions] == [(versions[0].version, run_id)]
    assert {d.version for d in decisions} == {str(versions[0].version)}
    assert sorted(d.created for d in decisions) == [False, True]
    aliases = dict(mlflow.MlflowClient().get_registered_model(name).aliases)
    assert aliases == {"champion": int(versions[0].version)}


def registry_error(code: str) -> MlflowException:
    return MlflowException(f"stand-in {code}", error_code=getattr(databricks_pb2, code))


def test_a_registry_write_that_loses_a_race_is_retried_once_and_a_missing_model_is_not():
    """The racing promotions above reach these branches only when the threads interleave just so;
    here each is taken on purpose."""
    calls = []

    def loses_once():
        calls.append(1)
        if len(calls) == 1:
            raise registry_error("RESOURCE_ALREADY_EXISTS")  # the other promotion's insert won

    registry.retried_once(loses_once)
    assert len(calls) == 2

    def model_gone():
        calls.append(1)
        raise registry_error("RESOURCE_DOES_NOT_EXIST")  # deleted meanwhile: retrying cannot help

    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        registry.retried_once(model_gone)
    assert len(calls) == 3, "not retried"


def test_registering_a_model_another_promotion_just_registered_is_no_error():
    class Client:
        def get_registered_model(self, name):
            raise registry_error("RESOURCE_DOES_NOT_EXIST")

        def create_registered_model(self, name, description):
            raise registry_error("RESOURCE_ALREADY_EXISTS")

    registry.ensure_registered_model(Client(), "zd")  # no error: the other one made it

    class Broken(Client):
        def get_registered_model(self, name):
            raise registry_error("PERMISSION_DENIED")

    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):
        registry.ensure_registered_model(Broken(), "zd")
