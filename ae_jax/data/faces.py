"""The embedded default dataset: cartoon faces rendered on device from known continuous factors.

Each image is a pure function of a factor vector in [0, 1]^F, so latent codes can be compared with the true
generative factors. Shapes are drawn in continuous coordinates [0, 1]^2 and anti-aliased with a sigmoid of
their signed distance in pixel units, so any resolution renders the same face.
"""

from __future__ import annotations

import functools
import typing

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ae_jax.runtime import make_key

FACE_FACTORS: tuple[str, ...] = (
    "head_x",
    "head_y",
    "head_size",
    "head_aspect",
    "skin_tone",
    "skin_warmth",
    "hair_color",
    "hair_amount",
    "eye_size",
    "eye_spacing",
    "mouth_width",
    "mouth_curvature",
    "background_hue",
    "background_brightness",
)

_HAIR_PALETTE = jnp.array([[0.10, 0.08, 0.07], [0.40, 0.24, 0.12], [0.68, 0.30, 0.12], [0.93, 0.80, 0.50]])
_LIGHT_SKIN, _DARK_SKIN = jnp.array([0.98, 0.86, 0.76]), jnp.array([0.42, 0.27, 0.17])
_WARM_SHIFT = jnp.array([0.07, -0.02, -0.06])
_EYE_WHITE, _PUPIL, _MOUTH = jnp.array([0.97, 0.97, 0.95]), jnp.array([0.08, 0.10, 0.18]), jnp.array([0.55, 0.08, 0.12])


def sample_factors(key: jax.Array, n: int) -> jax.Array:
    """n factor vectors, each factor uniform in [0, 1]: (n, len(FACE_FACTORS)) float32."""
    return jax.random.uniform(key, (n, len(FACE_FACTORS)), jnp.float32)


def _lerp(low, high, t):
    return low + (high - low) * t


def _coverage(signed_distance: jax.Array, pixel_size: float) -> jax.Array:
    """Anti-aliased share of each pixel inside a shape; the slope at the edge matches a one-pixel box filter."""
    return jax.nn.sigmoid(-4.0 * signed_distance / pixel_size)


def _ellipse_distance(x, y, centre_x, centre_y, radius_x, radius_y):
    """Approximate signed distance to an axis-aligned ellipse (negative inside), exact on the axes."""
    px, py = (x - centre_x) / radius_x, (y - centre_y) / radius_y
    normalised = jnp.sqrt(px**2 + py**2)
    gradient = jnp.sqrt((px / radius_x) ** 2 + (py / radius_y) ** 2)
    local_radius = jnp.clip(
        normalised / jnp.maximum(gradient, 1e-12), jnp.minimum(radius_x, radius_y), jnp.maximum(radius_x, radius_y)
    )
    return (normalised - 1.0) * local_radius


def _paint(canvas: jax.Array, color: jax.Array, coverage: jax.Array) -> jax.Array:
    """Paints `color` over `canvas` (H, W, 3) where `coverage` (H, W) says how much of each pixel it covers."""
    return canvas + (color - canvas) * coverage[..., None]


class _Head(typing.NamedTuple):
    """Where the head ellipse sits: its centre and half-axes in [0, 1] image coordinates."""

    centre_x: jax.Array
    centre_y: jax.Array
    half_width: jax.Array
    half_height: jax.Array


def _head_geometry(f: dict[str, jax.Array]) -> _Head:
    """The head's centre and half-axes from the position, size and aspect factors."""
    half_height = _lerp(0.26, 0.35, f["head_size"])
    return _Head(
        centre_x=_lerp(0.40, 0.60, f["head_x"]),
        centre_y=_lerp(0.46, 0.58, f["head_y"]),
        half_width=half_height * _lerp(0.70, 0.90, f["head_aspect"]),
        half_height=half_height,
    )


def _face_colors(f: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(background, skin, hair) RGB colours from the colour factors."""
    hue = 2 * jnp.pi * (0.8 * f["background_hue"] + jnp.array([0.0, 1 / 3, 2 / 3]))  # not a full turn: 0 and 1 differ
    background = _lerp(0.25, 0.95, f["background_brightness"]) * (0.55 + 0.45 * jnp.cos(hue))
    skin = jnp.clip(_lerp(_LIGHT_SKIN, _DARK_SKIN, f["skin_tone"]) + _WARM_SHIFT * f["skin_warmth"], 0, 1)
    palette_position = jnp.linspace(0, 1, len(_HAIR_PALETTE))
    hair = jax.vmap(jnp.interp, in_axes=(None, None, 1))(f["hair_color"], palette_position, _HAIR_PALETTE)
    return background, skin, hair


def _hair_layers(f, x, y, h: _Head, head: jax.Array, pixel_size: float) -> tuple[jax.Array, jax.Array]:
    """(back hair, fringe) coverage: more hair reaches further down the sides; the fringe covers the forehead."""
    centre_x, centre_y, half_width, half_height = h
    hair_amount = _lerp(0.15, 1.0, f["hair_amount"])
    back_hair = _coverage(
        _ellipse_distance(x, y, centre_x, centre_y - 0.12 * half_height, 1.12 * half_width, 1.02 * half_height),
        pixel_size,
    )
    back_hair = back_hair * _coverage(y - (centre_y - 0.3 * half_height + 0.9 * hair_amount * half_height), pixel_size)
    hairline = (
        centre_y
        - half_height
        + _lerp(0.15, 0.6, hair_amount) * half_height
        + 0.35 * half_height * ((x - centre_x) / half_width) ** 2
    )
    return back_hair, head * _coverage(y - hairline, pixel_size)


def _eye_layers(f, x, y, h: _Head, pixel_size: float) -> tuple[jax.Array, jax.Array]:
    """(eye whites, pupils) coverage of the two eyes, placed symmetrically about the head's centre."""
    eye_y = h.centre_y - 0.08 * h.half_height
    eye_radius = _lerp(0.10, 0.20, f["eye_size"]) * h.half_width
    eye_offset = _lerp(0.28, 0.50, f["eye_spacing"]) * h.half_width

    def both_eyes(radius_x, radius_y):
        return sum(
            _coverage(_ellipse_distance(x, y, h.centre_x + side * eye_offset, eye_y, radius_x, radius_y), pixel_size)
            for side in (-1, 1)
        )

    return both_eyes(eye_radius, 0.75 * eye_radius), both_eyes(0.5 * eye_radius, 0.5 * eye_radius)


def _mouth_layer(f, x, y, h: _Head, pixel_size: float) -> jax.Array:
    """Mouth coverage: a band around a parabola whose centre dips below its corners when smiling."""
    mouth_y = h.centre_y + 0.5 * h.half_height
    mouth_half_width = _lerp(0.18, 0.50, f["mouth_width"]) * h.half_width
    along = (x - h.centre_x) / mouth_half_width
    curve_y = mouth_y + _lerp(-0.14, 0.14, f["mouth_curvature"]) * h.half_height * (1 - along**2)
    band = jnp.maximum(jnp.abs(y - curve_y) - 0.035 * h.half_height, jnp.abs(x - h.centre_x) - mouth_half_width)
    return _coverage(band, pixel_size)


def _render_face(factors: jax.Array, x: jax.Array, y: jax.Array, pixel_size: float) -> jax.Array:
    """One face (H, W, 3) in [0, 1] from one factor vector; x, y are the (H, W) pixel-centre coordinates."""
    f = dict(zip(FACE_FACTORS, factors))
    h = _head_geometry(f)
    background, skin, hair = _face_colors(f)
    head = _coverage(_ellipse_distance(x, y, h.centre_x, h.centre_y, h.half_width, h.half_height), pixel_size)
    back_hair, fringe = _hair_layers(f, x, y, h, head, pixel_size)
    eye_whites, pupils = _eye_layers(f, x, y, h, pixel_size)
    mouth = _mouth_layer(f, x, y, h, pixel_size)
    canvas = jnp.broadcast_to(background, x.shape + (3,))
    for color, layer in (
        (hair, back_hair),
        (skin, head),
        (hair, fringe),
        (_EYE_WHITE, eye_whites),
        (_PUPIL, pupils),
        (_MOUTH, mouth),
    ):
        canvas = _paint(canvas, color, layer)
    return jnp.clip(canvas, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames="size")
def render_faces(factors: jax.Array, size: int) -> jax.Array:
    """Renders (n, F) factors into (n, size, size, 3) float32 images in [0, 1]."""
    centres = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size
    y, x = jnp.meshgrid(centres, centres, indexing="ij")
    return jax.vmap(_render_face, in_axes=(0, None, None, None))(factors.astype(jnp.float32), x, y, 1.0 / size)


@jax.jit
def _to_uint8(images: jax.Array) -> jax.Array:
    return jnp.round(images * 255).astype(jnp.uint8)


def make_faces(seed: int, n: int, size: int, chunk_pixels: int = 2**22) -> tuple[np.ndarray, np.ndarray]:
    """n faces with random factors, deterministic by seed: (uint8 (n, size, size, 3), float32 (n, F)) numpy.

    Renders chunks of about `chunk_pixels` pixels (the last one padded, so one compilation) to bound memory.
    """
    if n <= 0 or size <= 0:
        raise ValueError(f"make_faces needs n > 0 and size > 0, got n={n}, size={size}")
    factors = sample_factors(make_key(seed), n)
    chunk = min(n, max(1, chunk_pixels // (size * size)))
    images = np.empty((n, size, size, 3), np.uint8)
    starts = range(0, n, chunk)
    for start in tqdm(starts, desc=f"rendering {n} faces at {size}px", unit="chunk", disable=len(starts) < 4):
        part = factors[start : start + chunk]
        padded = jnp.pad(part, ((0, chunk - len(part)), (0, 0)))
        images[start : start + len(part)] = np.asarray(_to_uint8(render_faces(padded, size)))[: len(part)]
    return images, np.asarray(factors)
