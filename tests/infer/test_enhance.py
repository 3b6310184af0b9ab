"""`python -m src.enhance` on real files: formats, odd and large sizes, colour types, bad inputs.

Every output is checked against the Keras model run directly on the same pixels, so
these tests catch wrong scaling, channel order, orientation or tiling seams, not just
that a file appeared.
"""

import io
import subprocess
import sys

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from src.infer.enhance import main
from src.infer.enhancer import Enhancer
from src.infer.light_map import LightMap
from src.infer.photos import LUMA, orient, read_photo
from src.infer.png16 import png16_chunks
from src.infer.tiling import Window, enhance_tiled, run_tiles
from src.model.loading import load_keras_model
from tests.support.data import REPO_ROOT

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def net(tiny):
    return Enhancer(load_keras_model(tiny.model_path))


def dark(height: int, width: int, channels: int = 3, top: int = 90) -> np.ndarray:
    """A low-light uint8 test image: a smooth gradient plus noise, so curves and seams show."""
    ramp = np.linspace(0, top * 0.8, width)[None, :, None] + np.linspace(0, top * 0.2, height)[:, None, None]
    noise = RNG.integers(0, 12, (height, width, channels))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def to8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.int32)


def to16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 65535).astype(np.int64)


def enhance(tiny, *args: str) -> int:
    return main([*args, "--model", str(tiny.model_path)])


@pytest.mark.slow
def test_formats_and_odd_sizes_keep_name_size_and_format(tiny, net, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    images = {
        "one.png": dark(1, 1),
        "odd.png": dark(23, 17),
        "photo.jpg": dark(30, 40),
        "old.bmp": dark(9, 31),
        "scan.tif": dark(20, 12),
        "wide.TIFF": dark(3, 50),
    }
    for name, pixels in images.items():
        Image.fromarray(pixels).save(src / name, quality=100)
    (src / "notes.txt").write_text("not an image")

    assert enhance(tiny, str(src), "--output", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(images)
    for name in images:
        with Image.open(out / name) as written, Image.open(src / name) as original:
            assert (written.size, written.mode, written.format) == (original.size, "RGB", original.format)
            got = np.asarray(written).astype(np.int32)
            expected = to8(net(np.asarray(original).astype(np.float32) / 255))
        if name.endswith(".jpg"):
            assert np.abs(got - expected).mean() < 2.5  # JPEG at quality 95
        else:
            assert np.abs(got - expected).max() <= 1, name


@pytest.mark.slow
def test_tiles_with_enough_margin_equal_one_whole_image_pass(net):
    # Every distinct tile shape costs an XLA compile: 64 px across splits evenly into the 16 and 32 px
    # tiles, 60 down does not, so edge tiles still shrink (13 shapes where 70 x 95 made 47).
    # The shadow lift's gain map and scene gate come from the whole image (src.infer.light_map), as
    # the gate's strength does; with them, every tile is local.
    image = dark(60, 64).astype(np.float32) / 255
    whole = net(image)
    reach = net.receptive_radius  # curves 7 px + the denoiser's 21
    strength = net.strength_of(image)
    assert reach == 28 and 0 < strength < 1, "the image is in the gate's band: tiles must share its strength"
    light = LightMap(net, lambda y0, y1: image[y0:y1], *image.shape[:2])

    def tiled(tile: int, margin: int) -> np.ndarray:
        output = np.empty_like(image)

        def forward(window: Window) -> np.ndarray:
            y0, y1, x0, x1 = window.outer
            return net(image[y0:y1, x0:x1], strength, light.window(window.outer), light.lit)

        def store(window: Window, part: np.ndarray) -> None:
            y0, y1, x0, x1 = window.inner
            output[y0:y1, x0:x1] = part

        run_tiles(forward, store, *image.shape[:2], tile, margin)
        return output

    for tile, margin in ((32, reach), (16, 32), (50, reach + 1), (1000, 32)):
        assert np.abs(tiled(tile, margin) - whole).max() < 1e-5, (tile, margin)
    seams = np.abs(tiled(16, 0) - whole).max()
    assert seams > 1e-3, "without context the tile borders differ: the check above has teeth"


@pytest.mark.slow
def test_grayscale_alpha_palette_and_16_bit_keep_their_type(tiny, net, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    gray = dark(21, 13, 1)[..., 0]
    rgba = np.dstack([dark(15, 11), RNG.integers(0, 256, (15, 11), dtype=np.uint8)])
    gray16 = (dark(12, 18, 1)[..., 0].astype(np.uint16) * 257 + RNG.integers(0, 257, (12, 18))).astype(
        np.uint16
    )
    rgb16 = (dark(14, 9).astype(np.uint16) * 256 + RNG.integers(0, 256, (14, 9, 3))).astype(np.uint16)
    Image.fromarray(gray).save(src / "gray.png")
    Image.fromarray(rgba).save(src / "alpha.png")
    Image.fromarray(np.dstack([gray, gray[::-1]])).save(src / "gray_alpha.png")
    Image.fromarray(gray16).save(src / "gray16.png")
    (src / "rgb16.png").write_bytes(b"".join(png16_chunks(rgb16)))
    tifffile.imwrite(src / "rgb16.tif", rgb16, photometric="rgb")
    Image.fromarray(dark(10, 10)).convert("P", palette=Image.Palette.ADAPTIVE).save(src / "palette.png")

    assert enhance(tiny, str(src), "--output", str(out)) == 0

    def modes(name: str) -> str:
        with Image.open(out / name) as image:
            return image.mode

    gray_expected = to8(net(np.repeat(gray[..., None] / 255, 3, axis=2).astype(np.float32)) @ LUMA)
    assert modes("gray.png") == "L"
    assert np.abs(np.asarray(Image.open(out / "gray.png")).astype(np.int32) - gray_expected).max() <= 1

    assert modes("alpha.png") == "RGBA"
    written = np.asarray(Image.open(out / "alpha.png"))
    assert np.array_equal(written[..., 3], rgba[..., 3]), "alpha passes through untouched"
    assert np.abs(written[..., :3].astype(np.int32) - to8(net(rgba[..., :3] / np.float32(255)))).max() <= 1
    assert modes("gray_alpha.png") == "LA"

    assert modes("gray16.png") == "I;16"
    expected16 = to16(net(np.repeat(gray16[..., None] / np.float32(65535), 3, axis=2)) @ LUMA)
    assert np.abs(np.asarray(Image.open(out / "gray16.png")).astype(np.int64) - expected16).max() <= 2

    rgb16_expected = to16(net(rgb16 / np.float32(65535)))
    for name in ("rgb16.png", "rgb16.tif"):
        photo = read_photo(out / name)
        assert (photo.bits, photo.kind, photo.size) == (16, "rgb", (9, 14)), name
        assert np.abs(to16(photo.rgb) - rgb16_expected).max() <= 2, name
    assert tifffile.imread(out / "rgb16.tif").dtype == np.uint16
    assert modes("palette.png") == "RGB"


def test_sixteen_bit_png_round_trips_exactly_and_reads_elsewhere_as_8_bit(tmp_path):
    for channels in (3, 4):
        values = RNG.integers(0, 65536, (37, 29, channels), dtype=np.uint16)
        path = tmp_path / f"c{channels}.png"
        path.write_bytes(b"".join(png16_chunks(values, rows_per_chunk=8)))
        photo = read_photo(path)
        assert np.array_equal(to16(photo.rgb), values[..., :3])
        if channels == 4:
            assert np.array_equal(photo.alpha, values[..., 3])
        assert np.array_equal(np.asarray(Image.open(path))[..., :3], (values[..., :3] >> 8).astype(np.uint8))


def test_exif_orientation_is_applied_like_pillow(tmp_path):
    pixels = dark(4, 6)
    for orientation in range(1, 9):
        image = Image.fromarray(pixels)
        exif = image.getexif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"
        image.save(path, exif=exif.tobytes())
        assert np.array_equal(
            orient(pixels, orientation), np.asarray(ImageOps.exif_transpose(Image.open(path)))
        )


def test_a_rotated_jpeg_comes_out_upright_with_its_displayed_size(tiny, tmp_path):
    image = Image.fromarray(dark(10, 20))
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    assert enhance(tiny, str(tmp_path / "phone.jpg"), "--output", str(tmp_path / "out")) == 0
    with Image.open(tmp_path / "out" / "phone.jpg") as written:
        assert written.size == (10, 20) and written.getexif().get(0x0112) == 1


@pytest.mark.slow
def test_existing_outputs_are_kept_unless_overwrite(tiny, tmp_path, capsys):
    Image.fromarray(dark(8, 8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"mine")
    assert enhance(tiny, str(tmp_path / "a.png"), "--output", str(out)) == 1
    assert (out / "a.png").read_bytes() == b"mine"
    assert (
        f"error: {tmp_path / 'a.png'}: output {out / 'a.png'} exists (use --overwrite"
        in capsys.readouterr().err
    )
    assert enhance(tiny, str(tmp_path / "a.png"), "--output", str(out), "--overwrite") == 0
    assert Image.open(out / "a.png").size == (8, 8)


def test_same_names_from_two_folders_and_missing_inputs_are_errors_not_overwrites(tiny, tmp_path, capsys):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        Image.fromarray(dark(5, 5)).save(tmp_path / folder / "same.png")
    code = enhance(
        tiny, str(tmp_path / "x"), str(tmp_path / "y"), "nope.png", "--output", str(tmp_path / "out")
    )
    err = capsys.readouterr().err
    assert code == 1 and (tmp_path / "out" / "same.png").exists()
    assert f"{tmp_path / 'y' / 'same.png'}: same output name as {tmp_path / 'x' / 'same.png'}" in err
    assert "error: nope.png: no such file or folder" in err


@pytest.mark.slow
def test_model_from_a_run_uri_and_a_missing_champion(tiny, tmp_path, capsys):
    Image.fromarray(dark(6, 7)).save(tmp_path / "a.png")
    args = [str(tmp_path / "a.png"), "--output", str(tmp_path / "out")]
    assert main([*args, "--model", f"runs:/{tiny.run_id}/model"]) == 0
    via_run = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert enhance(tiny, *args, "--overwrite") == 0
    assert np.array_equal(via_run, np.asarray(Image.open(tmp_path / "out" / "a.png")))

    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--model", "models:/no-such-model@champion"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1
    assert err[-1].startswith("error: models:/no-such-model@champion: cannot load the model from")
    assert err[-1].endswith("(promote a model first: python -m src.promote)")


# Runs a command and reports its peak RSS (KiB) as its last stderr line. Linux carries a process's
# peak RSS over fork and exec, so the command's own ru_maxrss would be at least this test process's,
# which trained and evaluated a model; started from this small Python, it is the command's alone.
OWN_PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(f'peak_kb {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@pytest.mark.slow
def test_cli_large_image_in_bounded_memory_with_a_corrupt_file_among_good_ones(tiny, net, tmp_path):
    """The real command: exit status, one error line, progress bar, and RSS well under a whole pass."""
    src = tmp_path / "in"
    src.mkdir()
    large = dark(1600, 2400)  # 3.8 MP: a whole-image pass would need ~3.5 GB of activations
    Image.fromarray(large).save(src / "large.png")
    Image.fromarray(dark(17, 23)).save(src / "small.jpg")
    Image.fromarray(dark(30, 30)).save(src / "broken.png")
    (src / "broken.png").write_bytes((src / "broken.png").read_bytes()[:200])
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", OWN_PEAK_RSS, sys.executable, "-m", "src.enhance", str(src), "-o", str(out),
         "--model", str(tiny.model_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    peak_gb = int(done.stderr.splitlines()[-1].removeprefix("peak_kb ")) / 2**20
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {src / 'broken.png'}: ")
    assert "enhancing" in done.stderr and "large.png tile" in done.stderr
    assert "enhanced 2 of 3 images" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["large.png", "small.jpg"]
    assert peak_gb < 2.0, f"peak RSS {peak_gb:.2f} GB"
    got = np.asarray(Image.open(out / "large.png")).astype(np.int32)
    corner = large[:600, :700].astype(np.float32) / 255  # the tile seams at 512 px lie inside
    whole_photo = large.astype(np.float32) / 255
    light = LightMap(net, lambda y0, y1: whole_photo[y0:y1], *whole_photo.shape[:2])  # the photo's lift
    window = light.window((0, 600, 0, 700))
    expected = to8(net(corner, net.strength_of(whole_photo), window, light.lit))  # the whole photo's strength
    assert np.abs(got[:550, :650] - expected[:550, :650]).max() <= 1


def pp_model(path, scale: int = 8):
    """A Zero-DCE++ whose curves vary across the photo, with a denoiser and an exposure gate."""
    from src.model.denoise import denoiser_layer
    from src.model.networks import build_dce_net, inference_model

    keras.utils.set_random_seed(3)
    trained = build_dce_net(4, 8, "zero_dce_pp")
    trained.set_weights([w * 3 for w in trained.get_weights()])
    inference_model(trained, scale, denoiser_layer(0.05, 0.2, 1.0), (0.12, 0.30)).save(path)
    return path


@pytest.mark.slow
def test_zero_dce_pp_in_tiles_equals_the_whole_image_pass(tmp_path):
    """Its curves come from a downscaled copy of the whole photo, which plain tiles would not
    see: they are estimated once on the whole photo and applied per tile (src.infer.downscaled)."""
    from src.infer.downscaled import DownscaledCurves

    model_path = pp_model(tmp_path / "pp.keras")
    rgb = dark(111, 148)  # neither side a multiple of the scale factor (8); 11 tile shapes to compile
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    status = main([str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", str(model_path),
                   "--tile", "64"])  # fmt: skip
    assert status == 0
    written = np.asarray(Image.open(tmp_path / "out" / "photo.png")).astype(np.int32)
    enhancer = Enhancer(load_keras_model(model_path))
    image = rgb.astype(np.float32) / 255
    strength = enhancer.strength_of(image)
    whole = enhancer(image, strength)
    assert np.abs(written - to8(whole)).max() <= 1
    # The box filter sums in float64 (TensorFlow in float32): ~1e-7 apart, which this deliberately
    # steep model amplifies to ~1e-4, a fortieth of an 8-bit level. Tiling itself adds nothing.
    curves = DownscaledCurves(enhancer)
    one_window = curves.enhance_array(image, 1000, 28, strength)
    assert np.abs(one_window - whole).max() < 1e-3
    for tile, curve_tile in ((64, 512), (37, 5)):  # the small image's own tiles too
        tiled = curves.enhance_array(image, tile, 28, strength, curve_tile)
        assert np.abs(tiled - one_window).max() < 1e-6, (tile, curve_tile)
    naive = enhance_tiled(lambda part: enhancer(part, strength), image, 64, 32)
    assert np.abs(to8(naive) - to8(whole)).max() > 2, "tiles of the whole model would have changed the result"


@pytest.mark.slow
def test_served_photos_equal_the_command_lines_beyond_one_tile(tmp_path):
    """`mlflow models serve` and `python -m src.enhance` run one tiler, so a Zero-DCE++ photo
    larger than the default 512 px tile gets the same pixels from both."""
    from src.infer.image_model import enhance_file, serving_photos

    model_path = pp_model(tmp_path / "pp.keras")
    Image.fromarray(dark(530, 700)).save(tmp_path / "photo.png")
    assert main([str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", str(model_path)]) == 0
    photos = serving_photos(Enhancer(load_keras_model(model_path)))
    served = enhance_file(photos, (tmp_path / "photo.png").read_bytes())
    written = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert photos.tiles(read_photo(tmp_path / "photo.png")) > 1
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(served))), written)


def test_piecewise_box_filter_and_upsampling_match_tensorflow():
    import tensorflow as tf

    from src.infer.resampling import box_filter, upsample_window

    image = RNG.random((61, 83, 3)).astype(np.float32)
    for scale in (2, 7, 12):
        expected = tf.nn.avg_pool2d(image[None], scale, scale, "SAME")[0].numpy()
        small = box_filter(lambda y0, y1: image[y0:y1], 61, 83, scale)
        np.testing.assert_allclose(small, expected, atol=1e-6)
        full = tf.image.resize(small[None], (61, 83), "bilinear")[0].numpy()
        for box in ((0, 61, 0, 83), (5, 40, 13, 14), (60, 61, 0, 83)):
            y0, y1, x0, x1 = box
            np.testing.assert_allclose(upsample_window(small, box, 61, 83), full[y0:y1, x0:x1], atol=1e-6)
