"""params.yaml → typed, validated settings.

Every stage and command reads its settings through here so that a typo in
params.yaml fails at once with the key's name, not deep inside a training run.

The sections are pydantic dataclasses (frozen, unknown keys forbidden): they are still
stdlib dataclasses, so `dataclasses.replace/asdict/fields` work on them, and `replace`
validates its result like params.yaml itself. pydantic's multi-line ValidationError is
turned into one `file: section.key: problem` line (`src.params_messages`).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic import dataclasses as pydantic_dataclasses
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from src.errors import PipelineError
from src.params_messages import validation_line, yaml_line

DEFAULT_PARAMS = Path("params.yaml")
# Numeric precisions of training and inference: Keras mixed-precision policy names.
Precision = Literal["float32", "mixed_bfloat16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)

# A float with a dot or an exponent, as YAML 1.2 writes it: text a YAML 1.1 reader left unparsed.
_FINITE_FLOAT_TEXT = re.compile(
    r"^[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)$"
)


def read_yaml(path: Path) -> Any:
    """A YAML file as YAML 1.2 reads it (ruamel.yaml, as `src.tune` writes params.yaml back):
    `1e-3` is a number, `yes` a string, and a key given twice in one mapping is an error."""
    return YAML(typ="safe", pure=True).load(path.read_text())


def _number_from_text(value: Any) -> Any:
    """A float written as text by a YAML 1.1 reader ("1e-3" from yaml.safe_load) is still a
    number; any other text ("fast") is left for the strict float check to reject."""
    if isinstance(value, str) and _FINITE_FLOAT_TEXT.match(value):
        return float(value)
    return value


# Strict scalars: YAML gives real types, so no text is read as a number or a bool ("fast",
# "yes"), a bool is not a number (True == 1 in Python), and a float is not an int (3.5 epochs).
# Ints are accepted for floats (`timeout_s: 60`) and come out as floats.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), BeforeValidator(_number_from_text)]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]


def _range_shape(value: Any) -> Any:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"expected a [low, high] range, got {value!r}")
    return tuple(value)


def _range_order(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if not 0 < low <= high:
        raise ValueError(f"range needs 0 < low <= high, got {list(value)}")
    return value


def _below_one(value: tuple[float, float]) -> tuple[float, float]:
    if value[1] >= 1.0:
        raise ValueError(f"range must lie in (0, 1), got {list(value)}")
    return value


def _grid_shape(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"expected a non-empty list of numbers >= 0, got {value!r}")
    return tuple(value)


# [low, high] with 0 < low <= high: a search range (tune) or a band (model.gate_band).
Range = Annotated[tuple[Float, Float], BeforeValidator(_range_shape), AfterValidator(_range_order)]
# A Range of fractions: brightness levels, which 1.0 (white) would make meaningless.
UnitRange = Annotated[Range, AfterValidator(_below_one)]
# tuple[float, ...]: a grid of candidate values (evaluate.tv_weights), not a range.
Grid = Annotated[tuple[Annotated[Float, Field(ge=0)], ...], BeforeValidator(_grid_shape)]
# Grids of fractions: quantiles in [0, 1]; exposure factors in (0, 1], since 0 would be black.
FractionGrid = Annotated[tuple[Annotated[Float, Field(ge=0, le=1)], ...], BeforeValidator(_grid_shape)]
ExposureGrid = Annotated[tuple[Annotated[Float, Field(gt=0, le=1)], ...], BeforeValidator(_grid_shape)]

# No NaN or infinity: no setting means them (0 is the "no limit" of timeout_s).
_SECTION = ConfigDict(extra="forbid", allow_inf_nan=False)
_section = pydantic_dataclasses.dataclass(frozen=True, config=_SECTION)


@_section
class FetchConfig:
    url: Str
    source: Str = ""
    manifest: Str = "manifests/lol_dataset.sha256"
    retries: Annotated[Int, Field(ge=0)] = 5
    timeout_s: Annotated[Float, Field(gt=0)] = 60.0


@_section
class SplitConfig:
    seed: Int = 42
    train: Annotated[Int, Field(gt=0)] = 350
    val: Annotated[Int, Field(gt=0)] = 100
    test: Annotated[Int, Field(gt=0)] = 36


@_section
class ModelConfig:
    variant: Literal["zero_dce", "zero_dce_pp"] = "zero_dce_pp"
    iterations: Annotated[Int, Field(gt=0)] = 8
    filters: Annotated[Int, Field(gt=0)] = 32
    scale_factor: Annotated[Int, Field(gt=0)] = 12
    exposure_gate: Bool = True
    gate_band: UnitRange = (0.12, 0.30)  # [low, high] mean brightness


@_section
class LossConfig:
    spatial_weight: Float = 1.0
    exposure_weight: Float = 10.0
    color_weight: Float = 5.0
    smoothness_weight: Float = 200.0
    exposure_level: Annotated[Float, Field(gt=0, lt=1)] = 0.5
    exposure_patch: Annotated[Int, Field(gt=0)] = 16
    spatial_region: Annotated[Int, Field(gt=0)] = 4


@_section
class TrainConfig:
    seed: Int = 42
    epochs: Annotated[Int, Field(gt=0)] = 12
    batch_size: Annotated[Int, Field(gt=0)] = 16
    crop_size: Annotated[Int, Field(gt=0)] = 128
    learning_rate: Annotated[Float, Field(gt=0)] = 3e-4
    val_images: Annotated[Int, Field(ge=0)] = 25  # 0: all val pairs
    grad_clip_norm: Annotated[Float, Field(ge=0)] = 0.1  # 0 turns clipping off
    precision: Precision = "float32"
    threads: Annotated[Int, Field(ge=0)] = 0  # 0: TensorFlow decides
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"  # multi_worker reads TF_CONFIG
    fused_loss: Bool = True


@_section
class DenoiserConfig:
    kind: Literal["tv", "none"] = "tv"
    luma_weights: Grid = (0.03, 0.045, 0.06)
    chroma_weights: Grid = (0.1, 0.15, 0.25)
    gain_powers: Grid = (0.5, 1.0, 1.5)
    fit_images: Annotated[Int, Field(ge=0)] = 25  # 0 uses every val pair


@_section
class LightConfig:
    enabled: Bool = True
    scale_factor: Annotated[Int, Field(gt=0)] = 8
    filters: Annotated[Int, Field(gt=0)] = 24
    steps: Annotated[Int, Field(gt=0)] = 2000
    batch_size: Annotated[Int, Field(gt=0)] = 32
    learning_rate: Annotated[Float, Field(gt=0)] = 2e-3
    seed: Int = 42
    darkening: UnitRange = (0.03, 0.6)  # [low, high] linear-light factor of the synthetic shadows
    thresholds: Grid = (0.5, 0.8, 1.2)  # candidate log-darkening below which nothing is lifted
    # candidate quantiles of the photo's own darkening taken as its lit level (0: its most lit region)
    reference_quantiles: FractionGrid = (0.0, 0.25)
    dim_exposures: ExposureGrid = (0.5,)  # val normal-light images also scored dimmed by these factors
    normal_floor_db: Float = 30.0  # val normal-light PSNR against the input a threshold must keep
    fit_images: Annotated[Int, Field(ge=0)] = 40  # 0 uses every val pair


@_section
class EvaluateConfig:
    clahe_clip_limit: Float = 0.01
    timing_runs: Int = 10
    precision: Precision = "float32"
    tv_weights: Grid = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15)
    tv_fit_images: Annotated[Int, Field(ge=0)] = 20  # 0 uses every val pair
    mixed_light_factors: UnitRange = (0.05, 0.3)  # [low, high] linear-light factor of the darkened part
    mixed_light_seed: Int = 0


@_section
class TuneConfig:
    study_name: Str = "zero-dce-lol"
    storage: Str = "sqlite:///optuna.db"
    n_trials: Annotated[Int, Field(gt=0)] = 20
    timeout_s: Annotated[Float, Field(ge=0)] = 0.0  # 0: no limit
    workers: Annotated[Int, Field(gt=0)] = 1
    epochs: Annotated[Int, Field(gt=0)] = 12
    val_images: Annotated[Int, Field(ge=0)] = 40  # 0: all val pairs
    seed: Int = 42
    pruner: Literal["median", "none"] = "median"
    pruner_startup_trials: Annotated[Int, Field(ge=0)] = 4
    pruner_warmup_epochs: Annotated[Int, Field(ge=0)] = 2
    # Stale-trial detection on database storages (src.tune.study.Heartbeat, whose defaults these are).
    heartbeat_interval_s: Annotated[Int, Field(gt=0)] = 60
    heartbeat_grace_s: Annotated[Int, Field(gt=0)] = 300
    learning_rate: Range = (3e-5, 1e-3)
    spatial_weight: Range = (0.3, 3.0)
    exposure_weight: Range = (3.0, 30.0)
    color_weight: Range = (1.5, 15.0)
    smoothness_weight: Range = (20.0, 2000.0)
    exposure_level: UnitRange = (0.4, 0.7)  # searched values must stay valid loss.exposure_level


@_section
class PromoteConfig:
    model_name: Str = "zero-dce"
    metric: Str = "test_zero_dce_psnr"
    higher_is_better: Bool = True


@_section
class MlflowConfig:
    # No tracking URI here: MLflow resolves its store itself (MLFLOW_TRACKING_URI, else its
    # default sqlite:///mlflow.db), so every command and `mlflow ui` agree on one store.
    experiment: Str = "zero-dce-lol"


@_section
class Params:
    fetch: FetchConfig
    split: SplitConfig
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig
    denoiser: DenoiserConfig
    light: LightConfig
    evaluate: EvaluateConfig
    tune: TuneConfig
    promote: PromoteConfig
    mlflow: MlflowConfig

    @model_validator(mode="after")
    def _sections_agree(self) -> Params:
        """Rules across sections (each field's own bounds are checked by its type)."""
        crop = self.train.crop_size
        patch, region = self.loss.exposure_patch, self.loss.spatial_region
        checks = [
            (
                crop >= patch,
                f"train.crop_size ({crop}) must be at least loss.exposure_patch ({patch})",
            ),
            (
                crop % region == 0,
                f"train.crop_size ({crop}) must be a multiple of loss.spatial_region ({region})",
            ),
            (
                self.tune.heartbeat_grace_s > self.tune.heartbeat_interval_s,
                f"tune.heartbeat_grace_s ({self.tune.heartbeat_grace_s}) must be longer than "
                f"tune.heartbeat_interval_s ({self.tune.heartbeat_interval_s}): a live trial would "
                "look dead between two beats",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    def flat(self) -> dict[str, Any]:
        """`section.key` → value, the form MLflow params and `dvc exp run -S` use."""
        return {
            f"{section.name}.{key}": value
            for section in dataclasses.fields(self)
            for key, value in dataclasses.asdict(getattr(self, section.name)).items()
        }


_PARAMS = TypeAdapter(Params)
_SECTIONS: dict[str, type] = typing.get_type_hints(Params)


def params_from_dict(raw: dict[str, Any], where: str = "params") -> Params:
    """Validate a params mapping (as parsed from YAML) into `Params`."""
    if not isinstance(raw, dict):
        raise PipelineError(f"{where}: expected a mapping of sections")
    # A missing or empty section (`tune:` with every key commented out) means its defaults.
    raw = {**{name: {} for name in _SECTIONS}, **{k: {} if v is None else v for k, v in raw.items()}}
    try:
        return _PARAMS.validate_python(raw)
    except ValidationError as err:
        raise PipelineError(f"{where}: {validation_line(err.errors(include_url=False), _SECTIONS)}") from None


def with_overrides(params: Params, overrides: dict[str, Any]) -> Params:
    """`{"section.key": value}` applied to params, validated like params.yaml itself."""
    raw = {
        section.name: dataclasses.asdict(getattr(params, section.name))
        for section in dataclasses.fields(params)
    }
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        raw[section][key] = value
    return params_from_dict(raw, where="trial params")


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml; a missing or malformed file is a one-line error."""
    path = Path(path)
    try:
        raw = read_yaml(path)  # safe: no arbitrary objects
    except FileNotFoundError:
        raise PipelineError(f"{path}: params file not found (run from the project root)") from None
    except YAMLError as err:
        raise PipelineError(yaml_line(path, err)) from None
    return params_from_dict(raw or {}, where=str(path))
