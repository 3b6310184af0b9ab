"""The registry writes promotion makes: idempotent, so a rerun changes nothing, and safe when
two promotions of one run race (one version in the end, every alias and tag written once)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from src.errors import PipelineError
from src.tracking import CHAMPION_ALIAS as CHAMPION

CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"  # as logged by src.tracking.runs.log_keras_model
# Run metrics copied onto the version: the evaluation scores (logged to the training run
# by the evaluate stage) and the best validation scores, so the registry shows why.
METRIC_PREFIXES = ("test_", "eval15_", "best_val_", "inference_ms")
PROVENANCE_TAGS = ("git_commit", "data_version", "split_version")


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(
                name, description="Zero-DCE low-light enhancement; aliases: champion (serve this), challenger"
            )
        except MlflowException as race:
            if race.error_code != "RESOURCE_ALREADY_EXISTS":  # a promotion running alongside made it
                raise


def version_for_run(client: MlflowClient, name: str, run: Run) -> tuple[ModelVersion, bool]:
    """The run's version (the oldest, should there be several) or a new one; True if this call made it.

    Search-then-create races: two promotions of one run at the same moment both find no version
    and both create one. So a creator looks again, and deletes its own version unless it is the
    run's oldest. Whatever the interleaving exactly one survives, the oldest: its creator sees
    nothing older and keeps it, nobody deletes another's version, and every newer version's
    creator looks after creating it, so after the oldest exists, and deletes it. This needs
    nothing but the registry, which every promoting process shares; a lock file would only
    serialise processes on one machine, not two machines promoting against one tracking server.
    """
    run_id = run.info.run_id
    existing = run_versions(client, name, run_id)
    if existing:
        set_tags_if_changed(client, name, existing[0], version_tags(run))
        return existing[0], False
    created = client.create_model_version(
        name=name,
        source=model_source(client, run),
        run_id=run_id,
        tags=version_tags(run),
        model_id=logged_model_id(client, run),
        description=f"Zero-DCE trained in run {run_id}",
    )
    oldest = (run_versions(client, name, run_id) or [created])[0]
    if int(oldest.version) == int(created.version):
        return created, True
    # Another promotion of this run registered it first; ours is the duplicate.
    client.delete_model_version(name, str(created.version))
    set_tags_if_changed(client, name, oldest, version_tags(run))
    return oldest, False


def run_versions(client: MlflowClient, name: str, run_id: str) -> list[ModelVersion]:
    """The run's versions of `name`, oldest first."""
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return sorted(found, key=lambda version: int(version.version))


def logged_model_id(client: MlflowClient, run: Run) -> str | None:
    """The MLflow 3 logged model the train_denoiser stage created (named `model`), if the run has
    one; the latest where that stage ran more than once on the run (other denoiser params)."""
    outputs = getattr(run, "outputs", None)
    logged = [client.get_logged_model(o.model_id) for o in getattr(outputs, "model_outputs", None) or []]
    named = [model for model in logged if model.name == MODEL_ARTIFACT]
    return max(named, key=lambda model: model.creation_timestamp).model_id if named else None


def model_source(client: MlflowClient, run: Run) -> str:
    model_id = logged_model_id(client, run)
    if model_id:
        return f"models:/{model_id}"
    names = {item.path for item in client.list_artifacts(run.info.run_id)}
    if MODEL_ARTIFACT in names:  # a model logged MLflow-2 style, as a run artifact
        return f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
    raise PipelineError(f"run {run.info.run_id} has no logged model {MODEL_ARTIFACT!r} to register")


def version_tags(run: Run) -> dict[str, str]:
    """Evaluation metrics and provenance of the run, as version tags (strings, as the registry wants)."""
    tags = {
        key: f"{value:.6g}"
        for key, value in sorted(run.data.metrics.items())
        if key.startswith(METRIC_PREFIXES)
    }
    tags.update({key: run.data.tags[key] for key in PROVENANCE_TAGS if key in run.data.tags})
    tags["run_id"] = run.info.run_id
    return tags


def set_tags_if_changed(client: MlflowClient, name: str, version: ModelVersion, tags: dict[str, str]) -> None:
    """Write only differing tags: a rerun with nothing new leaves the registry untouched."""
    for key, value in tags.items():
        if version.tags.get(key) != value:
            retried_once(functools.partial(client.set_model_version_tag, name, version.version, key, value))


def alias_target(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None; read from the model's alias map, no exception games."""
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def move_alias(client: MlflowClient, name: str, alias: str, version: str) -> bool:
    """Point `alias` at `version`; returns whether anything changed.

    A new champion also sheds `challenger`, so one version never carries both.
    """
    changed = False
    current = alias_target(client, name, alias)
    if current is None or str(current.version) != str(version):
        retried_once(functools.partial(client.set_registered_model_alias, name, alias, version))
        changed = True
    if alias == CHAMPION:
        challenger = alias_target(client, name, CHALLENGER)
        if challenger is not None and str(challenger.version) == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
            changed = True
    return changed


def retried_once(write: Callable[[], object]) -> None:
    """Run an idempotent registry write (set an alias or a tag), once more if it fails.

    The SQL store sets both by read-then-insert, so two promotions of one run writing the same
    alias or tag at the same moment make one of them fail on the unique key; the second try
    finds the row and updates it.
    """
    try:
        write()
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise
        write()
