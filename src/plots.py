"""Figures with matplotlib: loss curves and a low / enhanced / ground-truth grid.

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

from src.losses import LOSS_NAMES

CURVES = (*LOSS_NAMES, "total")


def _save(fig: plt.Figure, path: Path, dpi: int = 110) -> Path:
    """Write via a temp file so a crash never leaves a truncated image behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    tmp.replace(path)
    return path


def loss_curves(history: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Train vs validation per epoch, one PNG per loss term and for the total (5 graphs),
    plus validation PSNR/SSIM; the best epoch is marked on each."""
    best_epoch = int(history.loc[history["val_psnr"].idxmax(), "epoch"])
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
    name: str
    low: np.ndarray
    enhanced: np.ndarray
    high: np.ndarray
    psnr: float
    input_psnr: float


def comparison_grid(examples: Sequence[Example], path: Path) -> Path:
    """Rows of low-light / Zero-DCE / ground truth, titled with each image's PSNR.

    Photos compress badly as PNG (3 MB for six rows); save it as `.jpg` to keep it small.
    """
    fig, axes = plt.subplots(len(examples), 3, figsize=(11, 2.6 * len(examples)), squeeze=False)
    for row, ex in zip(axes, examples, strict=True):
        panels = (
            (ex.low, f"{ex.name}: low-light ({ex.input_psnr:.2f} dB)"),
            (ex.enhanced, f"Zero-DCE ({ex.psnr:.2f} dB)"),
            (ex.high, "ground truth"),
        )
        for ax, (image, title) in zip(row, panels, strict=True):
            ax.imshow(np.clip(image, 0, 1))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    return _save(fig, path, dpi=90)
