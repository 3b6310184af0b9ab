"""The benchmark's report: ratios from one run's measurements, the table, the JSON.

A machine's targets are the reader's to judge (docs/speed.md records the project's); the report
gives the measurements and the ratios between them, which compare only within one run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from src.files import atomic_write_text


def summarise(results: list[dict]) -> dict[str, Any]:
    """Our/reference ratios, from the measurements of this one run."""
    # The reference's throughput varies from run to run more than ours (its per-epoch
    # decoding competes with the step for the same cores), so it is measured several times
    # and ratios are taken against its fastest run: the conservative comparison.
    reference = max((r for r in results if r["kind"] == "reference_train"), key=lambda r: r["images_per_s"])
    trained = [r for r in results if r["kind"] == "train"]
    inferred = [r for r in results if r["kind"] == "inference"]
    ratios: dict[str, float] = {}
    for r in trained:
        ratio = round(r["images_per_s"] / reference["images_per_s"], 2)
        ratios[f"train_{r['variant']}_{r['precision']}_vs_reference"] = ratio
    plain = {(r["variant"], r["path"]): r for r in inferred if r["path"] != "fused"}
    shipped = {r.get("denoiser", "none") for r in plain.values()}
    for r in (r for r in inferred if r["path"] == "fused" and r.get("denoiser", "none") in shipped):
        for key in (k for k in r if k.startswith("ms_")):
            for baseline in ("keras", "traced"):
                if (r["variant"], baseline) in plain:
                    name = f"infer_{r['variant']}_{r['precision']}_{key[3:]}_vs_{baseline}"
                    ratios[name] = round(plain[(r["variant"], baseline)][key] / r[key], 2)
    return {"ratios": ratios}


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    s = report["settings"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, GPU {m['gpu']}; TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}",
        f"training: {s['train_images']} real images, {s['crop_size']}x{s['crop_size']} crops, batch "
        f"{s['batch_size']}, {s['warmup_epochs']} warm-up + {s['timed_epochs']} timed epochs",
        "",
        f"{'training':<42}{'images/s':>10}{'input wait':>12}{'pipeline img/s':>16}{'peak MB':>10}",
    ]
    for r in report["results"]:
        if r["kind"] in ("train", "reference_train"):
            name = (
                f"reference (Model.fit, fp32), run {r.get('repeat', 1)}"
                if r["kind"] == "reference_train"
                else (f"{r['variant']} {r['precision']}")
            )
            wait = f"{r['input_wait_fraction']:.1%}" if "input_wait_fraction" in r else "-"
            pipe = f"{r['pipeline_images_per_s']:.0f}" if "pipeline_images_per_s" in r else "-"
            lines.append(f"{name:<42}{r['images_per_s']:>10.1f}{wait:>12}{pipe:>16}{r['peak_rss_mb']:>10.0f}")
    sizes = [k for k in next(r for r in report["results"] if r["kind"] == "inference") if k.startswith("ms_")]
    lines += [
        "",
        f"{'inference (median ms)':<42}" + "".join(f"{k[3:]:>12}" for k in sizes) + f"{'peak MB':>10}",
    ]
    for r in report["results"]:
        if r["kind"] == "inference":
            name = f"{r['variant']} " + {
                "keras": "saved graph fp32, eager",
                "traced": "saved graph fp32, tf.function",
            }.get(r["path"], f"fused {r['precision']}")
            name += " + denoiser" if r.get("denoiser", "none") != "none" else ", curves only"
            lines.append(
                f"{name:<42}" + "".join(f"{r[k]:>12.1f}" for k in sizes) + f"{r['peak_rss_mb']:>10.0f}"
            )
    lines += [
        "",
        "ratios (training: ours / the fastest reference run's images/s; inference: baseline ms / ours):",
    ]
    lines += [f"  {k}: {v}" for k, v in report["summary"]["ratios"].items()]
    return "\n".join(lines)


def write_json(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
