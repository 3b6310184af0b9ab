"""The README's and docs' tables of numbers, written from the committed reports.

A table sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in a page; `python -m
src.results_tables` rewrites every such block from reports/ (after `dvc repro`), and a test fails
while a page disagrees with the reports, so the docs cannot drift from what the pipeline measured.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

from src.files import atomic_write_text

# The best published zero-reference results on eval15, as their papers print them, beside ours.
PUBLISHED = [
    ("Li et al., ICLR 2025 (joint denoising and enhancement)", "19.80", "0.750"),
    ("NeRCo, ICCV 2023 (unpaired normal-light images)", "19.70", "0.742"),
    ("Self-DACE++, arXiv:2308.08197 (curves + a trained denoiser)", "19.69", "0.78"),
    ("CLODE, ICLR 2025 (neural-ODE curves)", "19.61", "0.718"),
    ("PairLIE, CVPR 2023 (two low-light shots per scene)", "19.51", "0.736"),
]
METHODS = {
    "zero_dce": "**the shipped model** (Zero-DCE++ curves + adaptive TV + exposure gate + shadow lift)",
    "curves_tv": "its curves + scikit-image TV, weight fitted on val",
    "curves": "its curves alone",
    "gamma": "one gamma curve fitted on the train pairs (supervised)",
    "clahe": "CLAHE (scikit-image)",
    "input": "the input, unenhanced",
}
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def _load(root: Path, path: str) -> dict:
    return json.loads((root / path).read_text())


def headline(root: Path) -> str:
    """Ours on eval15 beside the best published zero-reference rows."""
    ours = _load(root, "reports/eval/metrics.json")["eval15"]
    rows = [
        f"| {METHODS[m]} | {ours[m]['psnr']:.2f} | {ours[m]['ssim']:.3f} |" for m in ("zero_dce", "curves_tv")
    ]
    rows += [f"| {name} | {psnr} | {ssim} |" for name, psnr, ssim in PUBLISHED]
    return "| eval15 (15 images) | PSNR (dB) | SSIM |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def methods(root: Path) -> str:
    """Every method evaluate scores, on eval15 and on the whole test split."""
    metrics = _load(root, "reports/eval/metrics.json")
    rows = [
        f"| {METHODS[m]} (`{m}`) | {metrics['eval15'][m]['psnr']:.2f} | {metrics['eval15'][m]['ssim']:.3f} "
        f"| {metrics['test'][m]['psnr']:.2f} | {metrics['test'][m]['ssim']:.3f} "
        f"| {metrics['eval15'][m]['brightness']:.3f} |"
        for m in METHODS
    ]
    header = "| method | eval15 PSNR | eval15 SSIM | test PSNR | test SSIM | eval15 brightness |\n"
    return header + "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"


def normal_light(root: Path) -> str:
    """eval15's ground truths given as input: what the model does to photos already lit."""
    rows = []
    for method, values in _load(root, "reports/eval/metrics.json")["normal_light"].items():
        rows.append(
            f"| `{method}` | {values['psnr_vs_input']:.1f} | {values['worst_psnr_vs_input']:.1f} "
            f"| {values['brightness_in']:.3f} → {values['brightness']:.3f} | {values['clipped_pct']:.2f} % "
            f"| {values['unchanged']} of {values['images']} |"
        )
    header = "| method | PSNR vs input (pooled) | worst image | brightness | clipped | unchanged |\n"
    return header + "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"


def mixed_light(root: Path) -> str:
    """eval15's ground truths with part of the frame darkened: the lit part and the dark part."""
    rows = []
    for method, values in _load(root, "reports/eval/metrics.json")["mixed_light"].items():
        rows.append(
            f"| `{method}` | {values['psnr']:.2f} | {values['ssim']:.3f} | {values['lit_psnr_vs_input']:.1f} "
            f"| {values['lit_brightness_shift']:+.3f} (worst {values['worst_lit_brightness_shift']:.3f}) "
            f"| {values['dark_psnr']:.2f} |"
        )
    header = (
        "| method | PSNR | SSIM | lit part: PSNR vs input | lit part: brightness shift "
        "| darkened part: PSNR |\n"
    )
    return header + "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"


def light_threshold(root: Path) -> str:
    """The train_light stage's grid on val (the lift alone): per lit-level quantile (rows) and
    threshold (columns), mixed-light PSNR / normal-light PSNR, the chosen pair in bold."""
    chosen = _load(root, "reports/light/metrics.json")
    grid = _load(root, "reports/light/thresholds.json")
    thresholds = list(next(iter(grid.values())))

    def cell(q: str, t: str) -> str:
        values = grid[q][t]
        text = f"{values['mixed_psnr']:.2f} / {values['normal_psnr_vs_input']:.2f}"
        is_chosen = float(q) == chosen["reference_quantile"] and float(t) == chosen["threshold"]
        return f"**{text}**" if is_chosen else text

    rows = [f"| {q} | " + " | ".join(cell(q, t) for t in thresholds) + " |" for q in grid]
    return (
        "| lit-level quantile \\ threshold | "
        + " | ".join(thresholds)
        + " |\n|---|"
        + "---|" * len(thresholds)
        + "\n"
        + "\n".join(rows)
        + "\n"
    )


def fits(root: Path) -> str:
    """What the train, train_light and train_denoiser stages chose, and evaluate's timings."""
    train = _load(root, "reports/train/metrics.json")
    denoiser = _load(root, "reports/denoiser/metrics.json")
    metrics = _load(root, "reports/eval/metrics.json")
    light = _load(root, "reports/light/metrics.json")
    rows = [
        f"| best curves epoch | {train['best_epoch']} of {train['epochs']} "
        f"(val score {train['val_score']:.2f}) |",
        f"| denoiser strengths (luma, chroma, gain power) | {denoiser['luma_weight']}, "
        f"{denoiser['chroma_weight']}, {denoiser['gain_power']} |",
        f"| val score, curves → with the denoiser | {denoiser['curves_val_score']:.2f} → "
        f"{denoiser['val_score']:.2f} |",
        f"| gamma (fitted on train) / scikit-image TV weight (fitted on val) | {metrics['gamma']} / "
        f"{metrics['tv_weight']} |",
        f"| the shipped model, ms per 600×400 image | {metrics['inference_ms_600x400']} |",
        f"| scikit-image TV alone, ms per 600×400 image | {metrics['tv_ms_600x400']} |",
        f"| shadow lift: lit-level quantile, threshold (val); scene gate: lit region, lit share (train) | "
        f"{light['reference_quantile']}, {light['threshold']}; "
        f"{light['scene_region_low']}–{light['scene_region_high']}, "
        f"{light['scene_share_low']}–{light['scene_share_high']} |",
    ]
    return "| fitted or timed | value |\n|---|---|\n" + "\n".join(rows) + "\n"


TABLES: dict[str, Callable[[Path], str]] = {
    "headline": headline,
    "methods": methods,
    "normal-light": normal_light,
    "mixed-light": mixed_light,
    "light-threshold": light_threshold,
    "fits": fits,
}


def rendered(page: Path, root: Path) -> str:
    """The page with every results block rewritten from the reports under `root`."""

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ValueError(f"{page}: unknown results table {name!r} (one of {', '.join(TABLES)})")
        return match.group(1) + TABLES[name](root) + match.group(4)

    return BLOCK.sub(fill, page.read_text())


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def stale_pages(root: Path) -> list[str]:
    """The pages whose tables differ from what the reports give."""
    return [p.relative_to(root).as_posix() for p in pages(root) if rendered(p, root) != p.read_text()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the project folder (default: here)")
    root = parser.parse_args(argv).root
    for page in pages(root):
        text = rendered(page, root)
        if text != page.read_text():
            atomic_write_text(page, text)
            print(f"updated {page.relative_to(root)}")


if __name__ == "__main__":
    main()
