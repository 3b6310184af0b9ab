"""params.yaml → typed, validated settings.

Every stage and command reads its settings through here so that a typo in
params.yaml fails at once with the key's name, not deep inside a training run.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from src.errors import PipelineError, first_line

DEFAULT_PARAMS = Path("params.yaml")
# Numeric precisions of training and inference: Keras mixed-precision policy names.
Precision = Literal["float32", "mixed_bfloat16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    url: str
    source: str = ""
    manifest: str = "manifests/lol_dataset.sha256"
    retries: int = 5
    timeout_s: float = 60.0


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    seed: int = 42
    train: int = 350
    val: int = 100
    test: int = 36


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    variant: Literal["zero_dce", "zero_dce_pp"] = "zero_dce_pp"
    iterations: int = 8
    filters: int = 32
    scale_factor: int = 12
    denoiser: Literal["none", "n2n"] = "n2n"
    denoiser_filters: int = 24
    denoiser_stride: int = 2
    exposure_gate: bool = True
    gate_band: tuple[float, float] = (0.12, 0.30)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    spatial_weight: float = 1.0
    exposure_weight: float = 10.0
    color_weight: float = 5.0
    smoothness_weight: float = 200.0
    exposure_level: float = 0.5
    exposure_patch: int = 16
    spatial_region: int = 4
    n2n_gamma: float = 2.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    epochs: int = 12
    batch_size: int = 16
    crop_size: int = 128
    learning_rate: float = 3e-4
    denoiser_learning_rate: float = 1e-3
    val_images: int = 25
    denoiser_epochs: int = 20
    grad_clip_norm: float = 0.1
    precision: Precision = "float32"
    threads: int = 0
    strategy: Literal["default", "mirrored"] = "default"
    fused_loss: bool = True


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    clahe_clip_limit: float = 0.01
    timing_runs: int = 10
    precision: Precision = "float32"
    tv_weights: tuple[float, ...] = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15)
    tv_fit_images: int = 20


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    study_name: str = "zero-dce-lol"
    storage: str = "sqlite:///optuna.db"
    n_trials: int = 20
    timeout_s: float = 0.0
    workers: int = 1
    epochs: int = 12
    val_images: int = 40
    seed: int = 42
    pruner: Literal["median", "none"] = "median"
    pruner_startup_trials: int = 4
    pruner_warmup_epochs: int = 2
    learning_rate: tuple[float, float] = (3e-5, 1e-3)
    spatial_weight: tuple[float, float] = (0.3, 3.0)
    exposure_weight: tuple[float, float] = (3.0, 30.0)
    color_weight: tuple[float, float] = (1.5, 15.0)
    smoothness_weight: tuple[float, float] = (20.0, 2000.0)
    exposure_level: tuple[float, float] = (0.4, 0.7)
    denoiser_learning_rate: tuple[float, float] = (1e-4, 1e-3)
    n2n_gamma: tuple[float, float] = (0.5, 4.0)


@dataclasses.dataclass(frozen=True)
class PromoteConfig:
    model_name: str = "zero-dce"
    metric: str = "test_zero_dce_psnr"
    higher_is_better: bool = True


@dataclasses.dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "zero-dce-lol"


@dataclasses.dataclass(frozen=True)
class Params:
    fetch: FetchConfig
    split: SplitConfig
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    tune: TuneConfig
    promote: PromoteConfig
    mlflow: MlflowConfig

    def flat(self) -> dict[str, Any]:
        """`section.key` → value, the form MLflow params and `dvc exp run -S` use."""
        return {
            f"{section.name}.{key}": value
            for section in dataclasses.fields(self)
            for key, value in dataclasses.asdict(getattr(self, section.name)).items()
        }


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check one YAML value against its field type; ints are accepted where floats are."""
    hint = annotation
    if typing.get_origin(hint) is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise PipelineError(f"{where}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
        # tuple[float, ...]: a grid of candidate values (evaluate.tv_weights), not a range.
        if not isinstance(value, list | tuple) or not value:
            raise PipelineError(f"{where}: expected a non-empty list of numbers >= 0, got {value!r}")
        grid = tuple(_coerce(v, float, where) for v in value)
        if min(grid) < 0:
            raise PipelineError(f"{where}: expected a non-empty list of numbers >= 0, got {value!r}")
        return grid
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise PipelineError(f"{where}: expected a [low, high] range, got {value!r}")
        low, high = (_coerce(v, float, where) for v in value)
        if not 0 < low <= high:
            raise PipelineError(f"{where}: range needs 0 < low <= high, got {value!r}")
        return (low, high)
    raise PipelineError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise PipelineError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in raw:
            values[field.name] = _coerce(raw[field.name], hints[field.name], f"{where}.{field.name}")
        elif field.default is dataclasses.MISSING:
            raise PipelineError(f"{where}: missing required key {field.name!r}")
    return cls(**values)


def params_from_dict(raw: dict[str, Any], where: str = "params") -> Params:
    """Validate a params mapping (as parsed from YAML) into `Params`."""
    if not isinstance(raw, dict):
        raise PipelineError(f"{where}: expected a mapping of sections")
    hints = typing.get_type_hints(Params)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise PipelineError(f"{where}: unknown section(s) {', '.join(unknown)}")
    sections = {name: _build(cls, raw.get(name), f"{where}: {name}") for name, cls in hints.items()}
    params = Params(**sections)
    _check_ranges(params, where)
    return params


def _check_ranges(p: Params, where: str) -> None:
    checks = [
        (p.split.train > 0 and p.split.val > 0 and p.split.test > 0, "split sizes must be positive"),
        (
            p.model.iterations > 0 and p.model.filters > 0 and p.model.scale_factor > 0,
            "model sizes (iterations, filters, scale_factor) must be positive",
        ),
        (0.0 < p.loss.exposure_level < 1.0, "loss.exposure_level must lie in (0, 1)"),
        (p.model.denoiser_filters > 0, "model.denoiser_filters must be positive"),
        (p.model.denoiser_stride in (1, 2, 3), "model.denoiser_stride must be 1, 2 or 3"),
        (
            p.train.crop_size % (2 * p.model.denoiser_stride) == 0,
            "train.crop_size must be a multiple of 2 x model.denoiser_stride (the denoiser loss pairs cells)",
        ),
        (p.model.gate_band[1] < 1.0, "model.gate_band must lie in (0, 1): [low, high] mean brightness"),
        (p.loss.n2n_gamma >= 0, "loss.n2n_gamma must be >= 0"),
        (p.train.denoiser_epochs >= 0, "train.denoiser_epochs must be >= 0"),
        (p.train.val_images >= 0, "train.val_images must be >= 0 (0: all val pairs)"),
        (p.train.denoiser_learning_rate > 0, "train.denoiser_learning_rate must be positive"),
        (p.train.epochs > 0 and p.train.batch_size > 0, "train.epochs and train.batch_size must be positive"),
        (p.train.crop_size >= p.loss.exposure_patch, "train.crop_size must be at least loss.exposure_patch"),
        (
            p.train.crop_size % p.loss.spatial_region == 0,
            "train.crop_size must be a multiple of loss.spatial_region",
        ),
        (p.train.learning_rate > 0, "train.learning_rate must be positive"),
        (p.train.grad_clip_norm >= 0, "train.grad_clip_norm must be >= 0 (0 turns clipping off)"),
        (p.fetch.retries >= 0, "fetch.retries must be >= 0"),
        (p.tune.n_trials > 0 and p.tune.workers > 0 and p.tune.epochs > 0, "tune counts must be positive"),
        (p.tune.exposure_level[1] < 1.0, "tune.exposure_level must stay below 1"),
        (p.evaluate.tv_fit_images >= 0, "evaluate.tv_fit_images must be >= 0 (0 uses every val pair)"),
    ]
    for ok, message in checks:
        if not ok:
            raise PipelineError(f"{where}: {message}")


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml; a missing or malformed file is a one-line error."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: params file not found (run from the project root)") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({first_line(err)})") from None
    return params_from_dict(raw or {}, where=str(path))
