"""Figures with matplotlib: loss curves, a low / enhanced / ground-truth grid, and a
normal-light input / output grid.

DVC's own plots render through Vega from a CDN; PNGs open anywhere, offline too,
and attach to the MLflow run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from src.files import atomic_path
from src.model.losses import LOSS_NAMES

CURVES = (*LOSS_NAMES, "total")


def _save(fig: plt.Figure, path: Path, dpi: int = 110) -> Path:
    """Write via a temp file so a crash never leaves a truncated image behind."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def loss_curves(history: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Train vs validation per epoch, one PNG per loss term and for the total (5 graphs),
    plus validation PSNR/SSIM; the best epoch (by the
    validation score, as training picks it) is marked on each."""
    key = "val_score" if "val_score" in history else "val_psnr"
    best_epoch = int(history.loc[history[key].idxmax(), "epoch"])
    paths = []
    for name in CURVES:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.plot(history["epoch"], history[f"train_{name}"], marker=".", label="train")
        ax.plot(history["epoch"], history[f"val_{name}"], marker=".", label="validation")
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set(
            title=f"{name} loss" + (" (weighted sum)" if name == "total" else " (unweighted)"),
            xlabel="epoch",
            ylabel="loss",
        )
        ax.legend()
        ax.grid(alpha=0.3)
        paths.append(_save(fig, out_dir / f"loss_{name}.png"))

    fig, psnr_ax = plt.subplots(figsize=(5.5, 3.5))
    psnr_ax.plot(history["epoch"], history["val_psnr"], marker=".", color="C0")
    psnr_ax.set(xlabel="epoch", ylabel="validation PSNR (dB)", title="validation quality")
    ssim_ax = psnr_ax.twinx()
    ssim_ax.plot(history["epoch"], history["val_ssim"], marker=".", color="C1")
    ssim_ax.set_ylabel("validation SSIM", color="C1")
    psnr_ax.axvline(best_epoch, color="grey", linestyle=":")
    psnr_ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / "val_quality.png"))
    return paths


@dataclass(frozen=True)
class Example:
    """One low-light test image with the model's output and the scores from per_image.csv."""

    name: str
    low: np.ndarray
    enhanced: np.ndarray
    high: np.ndarray
    psnr: float
    ssim: float
    input_psnr: float
    input_ssim: float


@dataclass(frozen=True)
class NormalLightExample:
    """A well-exposed image given to the model: what it did to something that needed nothing."""

    name: str
    image: np.ndarray
    enhanced: np.ndarray
    psnr_vs_input: float
    brightness_in: float
    brightness: float


Panel = tuple[np.ndarray, str]  # an image and its title


def _grid(rows: Sequence[Sequence[Panel]], path: Path) -> Path:
    """Image panels, one list of (image, title) per row, axes off; saved at a modest dpi."""
    if not rows:
        raise ValueError(f"{path.name}: no examples to draw")
    columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(3.7 * columns, 2.6 * len(rows)), squeeze=False)
    for ax_row, panels in zip(axes, rows, strict=True):
        for ax in ax_row:
            ax.axis("off")
        for ax, (image, title) in zip(ax_row, panels, strict=False):
            ax.imshow(np.clip(image, 0, 1))
            ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi=90)


def comparison_panels(ex: Example) -> list[Panel]:
    """Input / Zero-DCE / ground truth, the first two titled with PSNR and SSIM against the truth."""
    return [
        (ex.low, f"{ex.name}: input ({ex.input_psnr:.2f} dB, SSIM {ex.input_ssim:.3f})"),
        (ex.enhanced, f"Zero-DCE ({ex.psnr:.2f} dB, SSIM {ex.ssim:.3f})"),
        (ex.high, "ground truth"),
    ]


def normal_light_panels(ex: NormalLightExample) -> list[Panel]:
    """Normal-light input / Zero-DCE, titled with PSNR vs the input and mean brightness in -> out."""
    return [
        (ex.image, f"{ex.name}: normal-light input"),
        (
            ex.enhanced,
            f"Zero-DCE ({ex.psnr_vs_input:.2f} dB vs input, "
            f"brightness {ex.brightness_in:.2f} -> {ex.brightness:.2f})",
        ),
    ]


def comparison_grid(examples: Sequence[Example], path: Path) -> Path:
    """One row of `comparison_panels` per low-light example.

    Photos compress badly as PNG (3 MB for six rows); save it as `.jpg` to keep it small.
    """
    return _grid([comparison_panels(ex) for ex in examples], path)


def normal_light_grid(examples: Sequence[NormalLightExample], path: Path) -> Path:
    """One row of `normal_light_panels` per example (save as `.jpg`): a model that only learned
    "brighten" blows well-exposed photos out, and this shows it at a glance."""
    return _grid([normal_light_panels(ex) for ex in examples], path)
