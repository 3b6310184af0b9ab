"""The shadow network and the lift it drives, in stock Keras layers and ops (saved graphs load anywhere).

The network sees the photo box-filtered by a scale factor and predicts, per small pixel, the
natural log of how much light is missing there (≤ 0; 0 where the region is as lit as the scene
allows). The lift divides that factor back out in linear light. Darkening weaker than a threshold
is ignored, so a well-exposed region is never touched by the network's small errors, and one that
is already bright gets no gain at all: the predicted darkening there is ~0.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from src.model.networks import gate_layer, gate_strength, upsample_like

SHADOW_NET = "shadow_net"  # image (small) → log darkening factor
LIGHT_GAIN = "light_gain"  # shadow_net + threshold: image (small) → log gain ≥ 0, what is saved
LIGHT_THRESHOLD = "light_threshold"  # the frozen layer holding the threshold, read back by inference
LIGHT_DOWNSCALE = "light_downscale"  # the box filter in front of the shadow net in a shipped graph
SCENE_REGION_GATE = "scene_region_gate"  # frozen: the brightness band of a lit region (see scene_lit)
SCENE_SHARE_GATE = "scene_share_gate"  # frozen: the band of the lit share of the frame
LIFTED_GATE = "lifted_exposure_gate"  # frozen: a copy of the exposure gate, read on the lifted photo
REGION = 4  # small pixels per side of a region whose brightness the scene gate reads (32 px at 1/8)
SCALES = 3  # pyramid levels below the input: 1/2, 1/4, 1/8 of the (already small) image


def build_shadow_net(filters: int = 24) -> keras.Model:
    """A small pyramid on log intensity: two 3×3 convolutions per level, every level upsampled
    back and merged, with the whole image's mean features added. Whether a region is in shadow
    depends on what surrounds it, often a whole half of the frame away, hence the coarse levels."""
    image = keras.Input(shape=(None, None, 3), name="image")
    # Log intensity: darkening by a factor is then a shift, the same whatever the surface.
    x = ops.log(ops.maximum(image, 1.0 / 255.0))

    def block(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_a")(x)
        return layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_b")(x)

    levels = [block(x, "level0")]
    for level in range(1, SCALES + 1):
        pooled = layers.AveragePooling2D(2, 2, padding="same", name=f"pool{level}")(levels[-1])
        levels.append(block(pooled, f"level{level}"))
    context = layers.GlobalAveragePooling2D(keepdims=True, name="context_pool")(levels[-1])
    context = layers.Conv2D(filters, 1, activation="relu", name="context")(context)
    merged = layers.Concatenate(name="merge")([levels[0], *(upsample_like(f, levels[0]) for f in levels[1:])])
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name="head")(merged) + context
    log_factor = -ops.relu(layers.Conv2D(1, 1, name="log_factor")(x))
    return keras.Model(image, log_factor, name=SHADOW_NET)


def threshold_layer(threshold: float) -> layers.Dense:
    """A frozen 1→1 Dense computing darkening − threshold, so the threshold travels in the file."""
    layer = layers.Dense(1, name=LIGHT_THRESHOLD, trainable=False, dtype="float32")
    layer.build((None, None, None, 1))
    layer.set_weights([np.ones((1, 1), np.float32), np.array([-threshold], np.float32)])
    return layer


def threshold_of(layer: layers.Dense) -> float:
    return round(-float(np.ravel(layer.get_weights()[1])[0]), 6)


def gain_from_darkening(above: keras.KerasTensor) -> keras.KerasTensor:
    """Log gain for a predicted log darkening, given darkening − threshold (`above`): the part
    beyond the threshold. On val it beat a soft knee (none below t, all of it above 2t) at every
    normal-light PSNR (docs/model.md)."""
    return ops.relu(above)


def band_layer(band: tuple[float, float], name: str, log: bool) -> layers.Dense:
    """A frozen 1→1 Dense mapping a value (or its log) onto [0, 1] across `band`, so the band
    travels inside the saved file (as the exposure gate's does)."""
    low, high = (float(np.log(v)) for v in band) if log else band
    span = max(high - low, 1e-6)
    layer = layers.Dense(1, name=name, trainable=False, dtype="float32")
    layer.build((None, 1))
    layer.set_weights([np.array([[1.0 / span]], np.float32), np.array([-low / span], np.float32)])
    return layer


def _smoothstep(t: keras.KerasTensor) -> keras.KerasTensor:
    t = ops.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def brightest_region(small: keras.KerasTensor) -> keras.KerasTensor:
    """[N, 1]: the mean brightness of the brightest REGION×REGION block of the small image."""
    luminance = ops.mean(small, axis=-1, keepdims=True)
    return ops.max(layers.AveragePooling2D(REGION, REGION, padding="same")(luminance), axis=(1, 2))


def lit_share(small: keras.KerasTensor, region_gate: layers.Dense) -> keras.KerasTensor:
    """[N, 1]: the share of the photo's REGION×REGION blocks (of the small image) that are lit like
    a normal photo's, each counted by a smoothstep of its log brightness across the region band."""
    luminance = ops.mean(small, axis=-1, keepdims=True)
    regions = layers.AveragePooling2D(REGION, REGION, padding="same", name="scene_regions")(luminance)
    lit = _smoothstep(region_gate(ops.log(ops.maximum(regions, 1e-4))))
    return ops.mean(lit, axis=(1, 2))


def scene_lit(
    small: keras.KerasTensor, region_gate: layers.Dense, share_gate: layers.Dense
) -> keras.KerasTensor:
    """[N, 1, 1, 1]: 1 when enough of the photo is lit like a normal photo, 0 when (almost) none of it
    is, a smoothstep of the lit share between.

    The exposure gate reads the mean, which a large shadow pulls down as far as a dark photo's: a
    backlit street would get the curves all over, its lit part brightened too. A lit share of the
    frame says the photo is lit and its dark parts are shadow, for the lift; a lamp or a window in a
    night photo is too small a share to turn its curves off.
    """
    return ops.reshape(_smoothstep(share_gate(lit_share(small, region_gate))), (-1, 1, 1, 1))


def relative_darkening(darkening: keras.KerasTensor, quantile: float) -> keras.KerasTensor:
    """Darkening beyond the photo's own lit level: the `quantile` of its REGION×REGION block means
    (0: its most lit block). A dim but evenly lit photo looks darkened all over to the network; only
    what is darker than the rest of the same photo is a shadow."""
    blocks = layers.AveragePooling2D(REGION, REGION, padding="same", name="darkening_regions")(darkening)
    level = ops.quantile(blocks, quantile, axis=(1, 2, 3), keepdims=True)
    return ops.relu(darkening - level)


def lifted_scene_lit(
    small: keras.KerasTensor, log_gain: keras.KerasTensor, lit: keras.KerasTensor, gate: layers.Dense
) -> keras.KerasTensor:
    """`lit` raised by how much of the photo's darkness the lift explains: the exposure gate read on
    the lifted photo, as a share of the gate read on the photo (≤ 1, since the lift only brightens).

    A dim scene with a deep shadow has a mean the gate calls dark, yet once its shadow is lifted it
    is as bright as before: the curves stay out and its lit part is left as it was. A dark photo the
    lift leaves alone keeps its curves (the ratio is 1 where the gain is 0, exactly).
    """
    before = gate_strength(small, gate)
    after = gate_strength(brighten(small, log_gain), gate)
    kept = ops.clip(after / ops.maximum(before, 1e-6), 0.0, 1.0)
    return 1.0 - (1.0 - lit) * kept


def build_light_gain(
    shadow_net: keras.Model,
    threshold: float,
    region_band: tuple[float, float],
    share_band: tuple[float, float],
    *,
    gate_band: tuple[float, float],
    reference_quantile: float = 0.0,
) -> keras.Model:
    """Small image → [log gain (≥ 0) in linear light, how lit the scene is]: the saved model of
    the train_light stage. `gate_band` is the shipped model's exposure gate (model.gate_band)."""
    image = keras.Input(shape=(None, None, 3), name="image")
    darkening = relative_darkening(-shadow_net(image), reference_quantile)
    gain = gain_from_darkening(threshold_layer(threshold)(darkening))
    region_gate = band_layer(region_band, SCENE_REGION_GATE, log=True)
    lit = scene_lit(image, region_gate, band_layer(share_band, SCENE_SHARE_GATE, log=False))
    lit = lifted_scene_lit(image, gain, lit, gate_layer(gate_band, LIFTED_GATE))
    return keras.Model(image, [gain, lit], name=LIGHT_GAIN)


def to_linear(srgb: keras.KerasTensor) -> keras.KerasTensor:
    """The sRGB curve undone (IEC 61966-2-1), as evaluate's mixed-light shadows are made."""
    curve = ops.power((ops.maximum(srgb, 0.04045) + 0.055) / 1.055, 2.4)
    return ops.where(srgb <= 0.04045, srgb / 12.92, curve)


def to_srgb(linear: keras.KerasTensor) -> keras.KerasTensor:
    curve = 1.055 * ops.power(ops.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055
    return ops.where(linear <= 0.0031308, linear * 12.92, curve)


def brighten(image: keras.KerasTensor, log_gain: keras.KerasTensor) -> keras.KerasTensor:
    """`image` (sRGB in [0, 1]) times exp(log_gain) in linear light, clipped at white; where the
    gain is 0 the pixel is the input bit for bit (the sRGB round trip alone would move it by 1e-7)."""
    lifted = to_srgb(ops.minimum(to_linear(image) * ops.exp(log_gain), 1.0))
    return ops.where(log_gain > 0.0, lifted, image)


def blend_lift(
    image: keras.KerasTensor,
    out: keras.KerasTensor,
    log_gain: keras.KerasTensor,
    strength: keras.KerasTensor,
    lit: keras.KerasTensor,
) -> keras.KerasTensor:
    """The gated model's output with the lift, weighted by two photo-level numbers.

    `strength` (the exposure gate, from the mean) says how dark the photo is; `lit` (from the share
    of its regions lit like a normal photo's) whether it is a lit scene with shadows. The curves'
    change is scaled by 1 − lit and the lift fills the rest: a dark photo keeps its curves, a lit
    photo with shadows gets the lift alone, its lit parts left as they were.
    """
    curves = strength * (1.0 - lit)
    change = (1.0 - lit) * (out - image) + (1.0 - curves) * (brighten(image, log_gain) - image)
    return ops.clip(image + change, 0.0, 1.0)
