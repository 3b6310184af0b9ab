"""`python -m src.enhance` when something is wrong: one line naming the file and the problem,
exit status 1, nothing lost; and memory that does not grow with float copies of the photo.

A tiny untrained Zero-DCE++ (scale factor 12 and an exposure gate, as the default model)
is enough: these tests are about files, messages and memory, not about what the curves
look like (tests/infer/test_enhance.py checks the pixels, denoiser included); without a
denoiser a 25 MP photo takes seconds less.
"""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image, features

from src.infer.enhance import main
from src.model.networks import build_dce_net, inference_model
from tests.support.data import REPO_ROOT

RNG = np.random.default_rng(11)
SUPPORTED = "PNG, JPEG, BMP, TIFF or WebP"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("model") / "tiny_pp.keras"
    inference_model(build_dce_net(8, 4, "zero_dce_pp"), 12, None, (0.12, 0.30)).save(path)
    return path


def dark(height: int, width: int) -> np.ndarray:
    ramp = np.linspace(0, 60, width)[None, :, None] + np.linspace(0, 20, height)[:, None, None]
    return np.clip(ramp + RNG.integers(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)


def run(model_path, *args: str) -> int:
    """main()'s exit status, whether it returns it or exits with it (a PipelineError)."""
    try:
        return main([*args, "--model", str(model_path)])
    except SystemExit as exit_info:
        return exit_info.code


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_an_output_that_is_a_file_is_one_line_before_any_work(model_path, tmp_path, capsys):
    Image.fromarray(dark(8, 8)).save(tmp_path / "a.png")
    (tmp_path / "taken.png").write_bytes(b"mine")
    assert run(model_path, str(tmp_path / "a.png"), "--output", str(tmp_path / "taken.png")) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'taken.png'}: --output must be a folder, and this is a file"
    ]
    assert (tmp_path / "taken.png").read_bytes() == b"mine"


def test_an_output_below_a_file_is_one_line(model_path, tmp_path, capsys):
    Image.fromarray(dark(8, 8)).save(tmp_path / "a.png")
    (tmp_path / "file").write_bytes(b"mine")
    assert run(model_path, str(tmp_path / "a.png"), "-o", str(tmp_path / "file" / "sub" / "deeper")) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'file' / 'sub' / 'deeper'}: cannot create this output folder: "
        f"{tmp_path / 'file'} is a file"
    ]


def unwritable_folder(tmp_path) -> Path:
    """A folder this process cannot write in: a mode-555 one, or for root (who writes anywhere)
    the kernel's /sys, which refuses new files to everyone."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
        return folder
    return Path("/sys")


def test_a_read_only_output_is_one_line_before_the_model_loads(tmp_path, capsys):
    out = unwritable_folder(tmp_path)
    if os.access(out, os.W_OK) and os.geteuid() != 0:
        pytest.skip(f"{out} is writable here")
    Image.fromarray(dark(8, 8)).save(tmp_path / "a.png")
    # No model at all: the folder is checked first, so its line is the one shown.
    assert run(tmp_path / "no-such-model.keras", str(tmp_path / "a.png"), "-o", str(out)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {out}: cannot write in the output folder (")
    assert not list(tmp_path.glob("read-only/*"))


@pytest.mark.skipif(not features.check("webp"), reason="this Pillow has no WebP")
def test_other_files_in_a_folder_are_named_and_counted_and_webp_is_enhanced(model_path, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    pixels = dark(20, 30)
    Image.fromarray(pixels).save(src / "a.png")
    Image.fromarray(pixels).save(src / "b.webp", lossless=True)
    Image.fromarray(dark(20, 30)).save(src / "c.gif")
    (src / "notes.txt").write_text("not an image")
    (src / ".DS_Store").write_bytes(b"hidden: not news")
    assert run(model_path, str(src), "-o", str(out)) == 0
    captured = capsys.readouterr()
    assert f"warning: {src}: skipped 2 files that are not {SUPPORTED}: c.gif, notes.txt\n" in captured.err
    assert captured.out.startswith(f"enhanced 2 of 2 images into {out} (")
    assert captured.out.rstrip().endswith("; 2 other files skipped")
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.webp"]
    with Image.open(out / "b.webp") as webp, Image.open(out / "a.png") as png:
        assert (webp.format, webp.size) == ("WEBP", (30, 20))
        assert np.array_equal(np.asarray(webp), np.asarray(png)), "a lossless WebP stays lossless"

    assert run(model_path, str(src / "c.gif"), "-o", str(out)) == 1  # named explicitly: an error
    assert error_lines(capsys) == [
        f"error: {src / 'c.gif'}: GIF files are not supported ({SUPPORTED})",
        "error: nothing to enhance (see the errors above)",
    ]


def test_an_animated_png_is_refused_with_one_line_and_the_others_go_on(model_path, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    frames = [Image.fromarray(dark(12, 16)) for _ in range(3)]
    frames[0].save(src / "anim.png", save_all=True, append_images=frames[1:])
    Image.fromarray(dark(12, 16)).save(src / "still.png")
    assert run(model_path, str(src), "-o", str(out)) == 1
    assert error_lines(capsys) == [
        f"error: {src / 'anim.png'}: animated PNG (3 frames) is not supported, "
        "only still images (the output would be the first frame alone)"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["still.png"]


def test_a_float_tiff_says_what_it_is(model_path, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    values = RNG.random((10, 14, 3)).astype(np.float32)
    tifffile.imwrite(src / "rgb.tif", values, photometric="rgb")
    tifffile.imwrite(src / "gray.tif", values[..., 0])
    assert run(model_path, str(src), "-o", str(tmp_path / "out")) == 1
    wanted = "32-bit float TIFF is not supported (8- or 16-bit RGB or grayscale)"
    assert error_lines(capsys) == [
        f"error: {src / 'gray.tif'}: {wanted}",
        f"error: {src / 'rgb.tif'}: {wanted}",
    ]


def test_no_raw_decompression_bomb_warning_and_a_stated_limit(model_path, tmp_path, monkeypatch, capsys):
    Image.fromarray(dark(40, 40)).save(tmp_path / "a.png")  # 1600 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow would warn (and refuse at 2000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(model_path, str(tmp_path / "a.png"), "-o", str(tmp_path / "out")) == 0
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == 1000, "Pillow's own setting is left as it was"
    capsys.readouterr()

    args = (str(tmp_path / "a.png"), "-o", str(tmp_path / "out2"), "--max-megapixels", "0.001")
    assert run(model_path, *args) == 1
    assert error_lines(capsys) == [
        f"error: {tmp_path / 'a.png'}: 40x40 px is 0.0016 megapixels, above the limit of 0.001 "
        "(--max-megapixels raises it)"
    ]
    assert not (tmp_path / "out2" / "a.png").exists()


def test_a_failed_write_leaves_nothing_behind_and_the_others_go_on(model_path, tmp_path, capsys):
    for name in ("a.png", "b.png"):
        Image.fromarray(dark(9, 9)).save(tmp_path / name)
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)  # an output name taken by a folder
    code = run(model_path, str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out), "--overwrite")
    assert code == 1
    assert error_lines(capsys) == [f"error: {out / 'a.png'}: cannot write (Is a directory)"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"], "no temporary file left"
    assert (out / "a.png").is_dir() and Image.open(out / "b.png").size == (9, 9)


@pytest.mark.slow
def test_peak_memory_grows_by_a_few_bytes_per_pixel_not_by_float_copies(model_path, tmp_path):
    """A 25 MP JPEG through the real command (Zero-DCE++ in tiles): the peak RSS above that of
    a tiny photo in the same process. The old path kept float32 copies of the photo (and ran
    Zero-DCE++ whole): far more than 16 bytes a pixel; integers in and out need about 7."""
    big, small, out = tmp_path / "big.jpg", tmp_path / "small.jpg", tmp_path / "out"
    pixels = np.tile(dark(500, 625), (10, 8, 1))  # 5000 x 5000
    Image.fromarray(pixels).save(big, quality=90)
    Image.fromarray(pixels[:64, :64]).save(small)
    del pixels
    script = textwrap.dedent(
        """
        import resource, sys
        from src.infer.enhance import main
        model, small, big, out = sys.argv[1:]
        assert main([small, "-o", out, "--model", model]) == 0
        warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert main([big, "-o", out, "--model", model]) == 0
        print(warm, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(model_path), str(small), str(big), str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    warm_kb, peak_kb = map(int, done.stdout.splitlines()[-1].split())
    per_pixel = (peak_kb - warm_kb) * 1024 / 25e6
    assert per_pixel < 16, (
        f"{per_pixel:.1f} bytes a pixel above the warm process ({peak_kb / 2**20:.2f} GB peak)"
    )
    assert Image.open(out / "big.jpg").size == (5000, 5000)
