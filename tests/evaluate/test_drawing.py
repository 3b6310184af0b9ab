"""The figures themselves: which graphs are drawn from the history, what they plot, and that
every image is written whole as a readable file."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.evaluate import drawing

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LOSS_FILES = [f"loss_{name}.png" for name in ("spatial", "exposure", "color", "smoothness", "total")]


def history(with_score: bool = True) -> pd.DataFrame:
    """As training writes it: three epochs of the curves. The score peaks at epoch 2, PSNR
    alone at epoch 3."""
    rng = np.random.default_rng(0)
    epochs = [1, 2, 3]
    frame = pd.DataFrame({"epoch": epochs})
    for name in drawing.CURVES:
        frame[f"train_{name}"] = rng.random(len(epochs))
        frame[f"val_{name}"] = rng.random(len(epochs))
    frame["val_psnr"] = [10.0, 12.0, 13.0]
    frame["val_ssim"] = [0.3, 0.6, 0.4]
    if with_score:
        frame["val_score"] = frame["val_psnr"] + 25 * frame["val_ssim"]
    return frame


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()  # the whole stream decodes: not truncated
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def drawn(monkeypatch) -> list[tuple[str, plt.Figure]]:
    """Every figure `_save` is given, by file name, before it is written and closed."""
    figures: list[tuple[str, plt.Figure]] = []
    save = drawing._save

    def keep(fig: plt.Figure, path: Path, dpi: int = 110) -> Path:
        figures.append((path.name, fig))
        # Keep what the test reads: saving closes the figure, but its artists stay readable.
        return save(fig, path, dpi)

    monkeypatch.setattr(drawing, "_save", keep)
    return figures


def test_loss_curves_are_one_png_per_loss_term_the_total_and_validation_quality(tmp_path) -> None:
    paths = drawing.loss_curves(history(), tmp_path)
    names = [*LOSS_FILES, "val_quality.png"]
    assert paths == [tmp_path / name for name in names]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names), "no temporary files are left"
    for path in paths:
        pixels = read_png(path)
        assert 300 < pixels.shape[1] < 800 and 200 < pixels.shape[0] < 600  # 5.5 x 3.5 in at 110 dpi
        assert pixels.std() > 5, f"{path.name} is a blank canvas"


def test_each_loss_graph_plots_train_and_validation_and_marks_the_best_scoring_epoch(tmp_path, drawn) -> None:
    frame = history()
    drawing.loss_curves(frame, tmp_path)
    figures = dict(drawn)
    for name in drawing.CURVES:
        (ax,) = figures[f"loss_{name}.png"].axes
        train, val, best = ax.lines
        np.testing.assert_array_equal(train.get_xdata(), frame["epoch"])
        np.testing.assert_array_equal(train.get_ydata(), frame[f"train_{name}"])
        np.testing.assert_array_equal(val.get_ydata(), frame[f"val_{name}"])
        # Epoch 2 has the best PSNR + 25 x SSIM, though epoch 3 has the best PSNR.
        assert list(best.get_xdata()) == [2, 2] and best.get_label() == "best epoch (2)"
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert legend == ["train", "validation", "best epoch (2)"]
    assert figures["loss_total.png"].axes[0].get_title() == "total loss (weighted sum)"
    assert figures["loss_color.png"].axes[0].get_title() == "color loss (unweighted)"

    psnr_ax, ssim_ax = figures["val_quality.png"].axes
    np.testing.assert_array_equal(psnr_ax.lines[0].get_ydata(), frame["val_psnr"])
    assert list(psnr_ax.lines[1].get_xdata()) == [2, 2]
    np.testing.assert_array_equal(ssim_ax.lines[0].get_ydata(), frame["val_ssim"])


def test_an_older_history_without_a_score_marks_the_best_psnr_epoch(tmp_path, drawn) -> None:
    drawing.loss_curves(history(with_score=False), tmp_path)
    (ax,) = dict(drawn)["loss_total.png"].axes
    assert list(ax.lines[2].get_xdata()) == [3, 3]


def test_a_figure_replaces_its_file_whole_and_a_failed_save_keeps_the_old_one(tmp_path, monkeypatch) -> None:
    path = tmp_path / "figure.png"
    path.write_bytes(b"the previous figure")

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    assert drawing._save(fig, path, dpi=50) == path
    assert read_png(path).shape[:2] != (0, 0)
    assert not plt.fignum_exists(fig.number), "a saved figure is closed"
    written = path.read_bytes()

    def crash(self, target, **kwargs) -> None:
        Path(target).write_bytes(PNG_MAGIC + b"half an image")
        raise OSError("disk full")

    fig, _ = plt.subplots()
    monkeypatch.setattr(type(fig), "savefig", crash)
    with pytest.raises(OSError, match="disk full"):
        drawing._save(fig, path)
    assert path.read_bytes() == written, "the old figure is untouched"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"], "the partial file is removed"
    assert not plt.fignum_exists(fig.number), "a failed figure is closed too"


def test_a_grid_png_has_one_row_per_example_with_each_image_in_its_place(tmp_path) -> None:
    def solid(rgb: tuple[float, float, float]) -> np.ndarray:
        return np.broadcast_to(np.array(rgb, np.float32), (40, 60, 3))

    rows = [[(solid((1, 0, 0)), "red"), (solid((0, 1, 0)), "green")], [(solid((0, 0, 1)), "blue")]]
    pixels = read_png(drawing._grid(rows, tmp_path / "grid.png"))
    height, width = pixels.shape[:2]
    assert 0.8 < height / (2 * 2.6 * 90) <= 1.05 and 0.8 < width / (2 * 3.7 * 90) <= 1.05  # figsize x dpi

    def share(part: np.ndarray, rgb: tuple[int, int, int]) -> float:
        return float(np.mean(np.all(part.astype(int) == rgb, axis=-1)))

    top, bottom = pixels[: height // 2], pixels[height // 2 :]
    quadrants = {
        "top left": top[:, : width // 2],
        "top right": top[:, width // 2 :],
        "bottom left": bottom[:, : width // 2],
        "bottom right": bottom[:, width // 2 :],
    }
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    expected = {"top left": "red", "top right": "green", "bottom left": "blue", "bottom right": None}
    for where, colour in expected.items():
        shares = {name: share(quadrants[where], rgb) for name, rgb in colours.items()}
        for name, value in shares.items():
            if name == colour:
                assert value > 0.4, f"{where} should show the {name} panel: {shares}"
            else:
                assert value == 0, f"{where} should not show {name}: {shares}"
    assert np.all(quadrants["bottom right"] == 255), "the missing panel is left blank"
