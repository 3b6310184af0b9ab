"""One Optuna trial: suggest params, train, report the validation score each epoch, track in MLflow.

The score is `src.evaluate.metrics.quality_score` (PSNR + 25·SSIM) of the finished image (curves,
gate, the denoiser at its reference strengths): PSNR alone rewarded fast, over-bright
configurations that lost SSIM. Trials train the curves only; the denoiser is fitted on the
chosen curves by the train_denoiser stage.

Kept apart from the study orchestration (`src.tune.search`, `src.tune.workers`) so worker
processes import only what a trial needs.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

import keras
import mlflow
import optuna

from src import signals
from src.config import Params, TuneConfig, with_overrides
from src.data.split import read_split
from src.train.loop import train
from src.tune.study import shown_storage

# Searched params: name as in params.yaml → (TuneConfig range field, log scale).
SEARCH_SPACE: dict[str, tuple[str, bool]] = {
    "train.learning_rate": ("learning_rate", True),
    "loss.spatial_weight": ("spatial_weight", True),
    "loss.exposure_weight": ("exposure_weight", True),
    "loss.color_weight": ("color_weight", True),
    "loss.smoothness_weight": ("smoothness_weight", True),
    "loss.exposure_level": ("exposure_level", False),
}
TRIAL_STATE_TAG = "trial_state"
RETRY_OF_TAG = "optuna.retry_of"  # on a retry's run: the number of the trial whose worker died


def suggest(trial: optuna.Trial, cfg: TuneConfig) -> dict[str, float]:
    """Draw one value per searched param from the ranges in params.yaml's `tune` section."""
    values = {}
    for name, (field, log) in SEARCH_SPACE.items():
        low, high = getattr(cfg, field)
        values[name] = trial.suggest_float(name, low, high, log=log)
    return values


class Objective:
    """Callable Optuna objective: maximise the best validation quality score of a short training."""

    def __init__(self, params: Params, split_dir: Path, scratch_dir: Path, parent_run_id: str | None):
        self.params = params
        self.parent_run_id = parent_run_id
        self.scratch_dir = scratch_dir
        train_rows = read_split(split_dir / "train.csv")
        val_rows = read_split(split_dir / "val.csv")
        if params.tune.val_images:  # a fixed subset: every trial is scored on the same images
            val_rows = val_rows.head(params.tune.val_images)
        self.train_paths = train_rows["low"].tolist()
        self.val_pairs = (val_rows["low"].tolist(), val_rows["high"].tolist())

    def __call__(self, trial: optuna.Trial) -> float:
        cfg = self.params.tune
        budget = {"train.epochs": cfg.epochs, "train.val_images": cfg.val_images}
        trial_params = with_overrides(self.params, {**suggest(trial, cfg), **budget})
        keras.backend.clear_session()
        keras.utils.set_random_seed(cfg.seed)  # same init and batches for every trial: a fair race
        print(f"trial {trial.number}: {_describe(trial.params)}", file=sys.stderr)
        retry_of = _close_dead_attempt(trial)
        run = mlflow.start_run(
            run_name=f"trial-{trial.number}", nested=True, parent_run_id=self.parent_run_id
        )
        checkpoints = self.scratch_dir / f"trial-{trial.number}-{run.info.run_id[:8]}"
        try:  # from the run's start: a stop at any point closes it (else MLflow's atexit FINISHes it)
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            trial.set_user_attr("worker_pid", os.getpid())
            mlflow.log_params({**trial_params.flat(), "tune.storage": shown_storage(cfg.storage)})
            mlflow.set_tags({"optuna.study": cfg.study_name, "optuna.trial": str(trial.number)})
            if retry_of is not None:
                mlflow.set_tag(RETRY_OF_TAG, str(retry_of))
            result = train(
                trial_params,
                self.train_paths,
                self.val_pairs,
                checkpoints,
                fingerprint_value=f"trial-{trial.number}",
                on_epoch_end=lambda epoch, row, improved: self._report(trial, epoch, row),
            )
        except optuna.TrialPruned:
            mlflow.set_tag(TRIAL_STATE_TAG, "pruned")
            mlflow.end_run()
            raise
        except BaseException as err:
            # Optuna marks the trial FAIL as this propagates (and, for a KeyboardInterrupt, which a
            # stop signal raises, then re-raises it and stops the study); the reason goes with it.
            interrupted = isinstance(err, KeyboardInterrupt)
            reason = signals.reason(err)
            trial.set_user_attr("failure_reason", reason)
            mlflow.set_tags(
                {TRIAL_STATE_TAG: "interrupted" if interrupted else "failed", "failure_reason": reason}
            )
            mlflow.end_run(status="KILLED" if interrupted else "FAILED")
            if interrupted:
                signals.add_outcome(err, f"trial {trial.number} marked FAIL, its MLflow run KILLED")
            raise
        finally:
            shutil.rmtree(checkpoints, ignore_errors=True)
        best = result.best
        trial.set_user_attr("val_psnr", best["val_psnr"])
        trial.set_user_attr("val_ssim", best["val_ssim"])
        trial.set_user_attr("best_epoch", int(best["epoch"]))
        mlflow.log_metrics(
            {
                "best_val_score": best["val_score"],
                "best_val_psnr": best["val_psnr"],
                "best_val_ssim": best["val_ssim"],
            }
        )
        mlflow.set_tag(TRIAL_STATE_TAG, "complete")
        mlflow.end_run()
        return best["val_score"]

    @staticmethod
    def _report(trial: optuna.Trial, epoch: int, row: dict[str, float]) -> None:
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        trial.report(row["val_score"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val score {row['val_score']:.2f} after epoch {epoch + 1}")


def _close_dead_attempt(trial: optuna.Trial) -> int | None:
    """For a retry of a trial whose worker died: the original trial's number, after closing the
    dead attempt's MLflow run (left RUNNING by the killed process) as KILLED, so the parent run
    does not show one configuration twice, once as if still training.

    The retry inherits the dead attempt's user attributes, its MLflow run id among them; nothing
    else of the attempt is kept (its epoch scores are not, see `src.tune.study.open_storage`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A Trial does not show its system attributes, where the retry callback keeps its record.
        (frozen,) = (t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    dead_run_id = trial.user_attrs.get("mlflow_run_id")
    if retry_of is None or dead_run_id is None:
        return retry_of
    client = mlflow.MlflowClient()
    try:
        if client.get_run(dead_run_id).info.status == "RUNNING":
            client.set_tag(dead_run_id, TRIAL_STATE_TAG, "stale")
            client.set_tag(dead_run_id, "failure_reason", f"worker died; retried as trial {trial.number}")
            client.set_terminated(dead_run_id, status="KILLED")
    except mlflow.exceptions.MlflowException as err:  # another tracking store, or the run deleted
        print(f"trial {trial.number}: could not close run {dead_run_id} ({err})", file=sys.stderr)
    return retry_of


def _describe(values: dict[str, float]) -> str:
    return ", ".join(f"{name.split('.', 1)[1]}={value:.3g}" for name, value in values.items())
