"""The procedural face renderer: determinism, shapes, resolution independence, factors acting where expected."""

import jax
import numpy as np
import pytest

from ae_jax.data import faces

NUM_FACTORS = len(faces.FACE_FACTORS)
SWEEP_SIZE = 32


@pytest.fixture(scope="module")
def sweep() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per factor, the faces with that factor at 0 and at 1 and all others at 0.5 (one render call)."""
    factors = np.full((NUM_FACTORS, 2, NUM_FACTORS), 0.5, np.float32)
    for i in range(NUM_FACTORS):
        factors[i, :, i] = (0.0, 1.0)
    images = np.asarray(faces.render_faces(factors.reshape(-1, NUM_FACTORS), SWEEP_SIZE))
    images = images.reshape(NUM_FACTORS, 2, *images.shape[1:])
    return {name: (images[i, 0], images[i, 1]) for i, name in enumerate(faces.FACE_FACTORS)}


def test_sample_factors_are_uniform_in_unit_interval():
    factors = np.asarray(faces.sample_factors(jax.random.key(0), 2000))
    assert factors.shape == (2000, NUM_FACTORS) and factors.dtype == np.float32
    assert factors.min() >= 0 and factors.max() <= 1
    np.testing.assert_allclose(factors.mean(0), 0.5, atol=0.05)


@pytest.mark.parametrize("size", [16, 32])
def test_render_shape_dtype_and_range(size):
    images = np.asarray(faces.render_faces(faces.sample_factors(jax.random.key(1), 4), size))
    assert images.shape == (4, size, size, 3) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


def test_make_faces_is_deterministic_by_seed_and_chunking_does_not_matter():
    images, factors = faces.make_faces(seed=3, n=4, size=16)
    again, _ = faces.make_faces(seed=3, n=4, size=16)
    chunked, chunked_factors = faces.make_faces(seed=3, n=4, size=16, chunk_pixels=3 * 16 * 16)
    other, other_factors = faces.make_faces(seed=4, n=4, size=16)
    assert images.dtype == np.uint8 and images.shape == (4, 16, 16, 3) and factors.shape == (4, NUM_FACTORS)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(factors, chunked_factors)
    assert np.abs(images.astype(int) - chunked).max() <= 1  # another batch shape may round one level apart
    assert not np.array_equal(factors, other_factors) and not np.array_equal(images, other)
    np.testing.assert_array_equal(images, np.round(np.asarray(faces.render_faces(factors, 16)) * 255))


def test_different_factors_give_different_images():
    images = np.asarray(faces.render_faces(faces.sample_factors(jax.random.key(2), 4), 16)).reshape(4, -1)
    distances = np.abs(images[:, None] - images[None]).mean(-1)
    assert (distances + np.eye(4) > 0.01).all()


def test_every_factor_changes_the_image(sweep):
    for name, (low, high) in sweep.items():
        assert np.abs(low - high).mean() > 1e-3, name


def _region_change(low: np.ndarray, high: np.ndarray) -> dict[str, float]:
    """Mean absolute change in the top and bottom halves, the central quarter and the outer eighth ring."""
    change = np.abs(low - high).mean(-1)
    size = len(change)
    half, eighth = size // 2, size // 8
    ring = np.ones_like(change, bool)
    ring[eighth:-eighth, eighth:-eighth] = False
    return dict(
        top=change[:half].mean(),
        bottom=change[half:].mean(),
        centre=change[3 * eighth : 5 * eighth, 3 * eighth : 5 * eighth].mean(),
        border=change[ring].mean(),
    )


@pytest.mark.parametrize(
    "factor, changed, unchanged",
    [
        ("mouth_curvature", "bottom", "top"),
        ("mouth_width", "bottom", "top"),
        ("hair_color", "top", "bottom"),
        ("hair_amount", "top", "bottom"),
        ("background_hue", "border", "centre"),
        ("background_brightness", "border", "centre"),
    ],
)
def test_factor_changes_its_own_region(sweep, factor, changed, unchanged):
    change = _region_change(*sweep[factor])
    assert change[changed] > 5 * change[unchanged], change


def test_rendering_is_resolution_independent():
    factors = faces.sample_factors(jax.random.key(1), 4)
    fine = np.asarray(faces.render_faces(factors, 64)).reshape(4, 32, 2, 32, 2, 3).mean((2, 4))
    coarse = np.asarray(faces.render_faces(factors, 32))
    assert np.abs(fine - coarse).mean() < 0.01
