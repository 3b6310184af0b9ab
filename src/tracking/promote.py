"""Promotion: register an evaluated training run's model and decide whether it becomes the champion.

`python -m src.promote [--run-file models/run.json | --run-id ID] [--force]`

The run's model becomes a new version of the registered model (`promote.model_name`),
tagged with its evaluation metrics, git commit and data hash. The alias `champion`
moves to it only when it beats the current champion on `promote.metric` (strictly:
a tie keeps the incumbent, so re-evaluating an identical model never churns the
alias); otherwise it gets `challenger`. Aliases, not the deprecated registry stages,
so `models:/zero-dce@champion` always names the model to serve.

Promoting the same run again finds its existing version instead of creating a
duplicate, and writes nothing when nothing changed, so the DVC stage may rerun freely;
two promotions of one run at the same moment also end with a single version.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from src.config import DEFAULT_PARAMS, PromoteConfig, load_params
from src.errors import PipelineError, cli_entry
from src.files import atomic_write_text
from src.quiet_tensorflow import add_verbose_flag
from src.tracking import CHAMPION_ALIAS as CHAMPION
from src.tracking.registry import (
    CHALLENGER,
    alias_target,
    ensure_registered_model,
    move_alias,
    set_tags_if_changed,
    version_for_run,
)
from src.tracking.runs import read_run_id

REASON_TAG = "promotion"


@dataclass(frozen=True)
class Decision:
    """What promotion did; printed as one line and written as JSON for DVC."""

    model_name: str
    version: str
    run_id: str
    metric: str
    value: float
    alias: str  # champion or challenger
    created: bool  # a new version was registered (False: the run's version existed)
    changed: bool  # an alias moved
    forced: bool
    incumbent_version: str | None
    incumbent_value: float | None
    reason: str


def promote(
    run_id: str, cfg: PromoteConfig, force: bool = False, client: MlflowClient | None = None
) -> Decision:
    """Register the run's model (once) and move `champion` or `challenger` to it."""
    client = client or MlflowClient()
    run = _get_run(client, run_id)
    value = _metric(run, cfg.metric)
    ensure_registered_model(client, cfg.model_name)
    version, created = version_for_run(client, cfg.model_name, run)
    champion = alias_target(client, cfg.model_name, CHAMPION)
    incumbent_value = None
    if champion is not None and champion.version != version.version:
        incumbent_value = _incumbent_value(client, champion, cfg.metric)
    alias, reason = _decide(cfg, version.version, value, champion, incumbent_value, force)
    changed = move_alias(client, cfg.model_name, alias, version.version)
    if changed:  # the tag says why the alias last moved here; a no-op rerun leaves it alone
        set_tags_if_changed(client, cfg.model_name, version, {REASON_TAG: reason})
    else:
        reason += " (unchanged)"
    label = (
        f"{cfg.model_name} v{version.version} (run {run_id[:8]}{'' if created else ', already registered'})"
    )
    return Decision(
        model_name=cfg.model_name,
        version=str(version.version),
        run_id=run_id,
        metric=cfg.metric,
        value=value,
        alias=alias,
        created=created,
        changed=changed,
        forced=force,
        incumbent_version=None if champion is None else str(champion.version),
        incumbent_value=incumbent_value,
        reason=f"{label}: {reason}",
    )


def _get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise PipelineError(
            f"MLflow run {run_id} is not in the store {mlflow.get_tracking_uri()} "
            "(is MLFLOW_TRACKING_URI pointing at the store the train stage used?)"
        ) from None


def _metric(run: Run, metric: str) -> float:
    value = run.data.metrics.get(metric)
    if value is None:
        raise PipelineError(
            f"run {run.info.run_id} has no metric {metric!r} (run the evaluate stage first, "
            "or set promote.metric to a metric the run has)"
        )
    if not math.isfinite(value):
        raise PipelineError(f"run {run.info.run_id}: metric {metric!r} is {value}, not a number to compare")
    return float(value)


def _incumbent_value(client: MlflowClient, champion: ModelVersion, metric: str) -> float:
    """The champion's score, from its run (the source of truth) or else the tag copied at registration."""
    value = None
    if champion.run_id:
        try:
            value = client.get_run(champion.run_id).data.metrics.get(metric)
        except MlflowException:
            value = None  # the run was deleted; the version tag still remembers its score
    if value is None and metric in champion.tags:
        value = float(champion.tags[metric])
    if value is None or not math.isfinite(value):
        raise PipelineError(
            f"champion v{champion.version} (run {champion.run_id}) has no {metric!r} to compare with; "
            "evaluate it, or promote with --force"
        )
    return float(value)


def _decide(
    cfg: PromoteConfig,
    version: str,
    value: float,
    champion: ModelVersion | None,
    incumbent: float | None,
    force: bool,
) -> tuple[str, str]:
    """(alias, why) for the candidate."""
    score = f"{cfg.metric} {value:.4g}"
    if champion is None:
        return CHAMPION, f"{score}; no champion yet -> {CHAMPION}"
    if str(champion.version) == str(version):
        return CHAMPION, f"{score}; already the {CHAMPION}"
    better = value > incumbent if cfg.higher_is_better else value < incumbent
    sign = "=" if value == incumbent else (">" if value > incumbent else "<")
    direction = "" if cfg.higher_is_better else " (lower is better)"
    versus = f"{score} {sign} {CHAMPION} v{champion.version} {incumbent:.4g}{direction}"
    if force and not better:
        return CHAMPION, f"{versus}, --force -> {CHAMPION}"
    if better:
        return CHAMPION, f"{versus} -> {CHAMPION}"
    tie = "; a tie keeps the champion" if sign == "=" else ""
    return CHALLENGER, f"{versus}{tie} -> {CHALLENGER}"


def write_result(path: Path, decision: Decision) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(decision), indent=2) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m src.promote", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--run-file", type=Path, default=Path("models/run.json"), help="written by the train stage"
    )
    source.add_argument("--run-id", help="an MLflow run id instead of the run file")
    parser.add_argument("--force", action="store_true", help="make it the champion whatever its score")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--result", type=Path, help="also write the decision as JSON here (for DVC)")
    add_verbose_flag(parser)  # read by src.quiet_tensorflow before TensorFlow loads
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> Decision:
    args = parse_args(argv)
    params = load_params(args.params)
    run_id = args.run_id or read_run_id(args.run_file)
    decision = promote(run_id, params.promote, force=args.force)
    print(decision.reason)
    if args.result:
        write_result(args.result, decision)
    return decision
