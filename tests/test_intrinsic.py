import numpy as np
import pytest

from ae_jax.evaluators.intrinsic_dimension import dimension_vs_scale, two_nn_dimension


@pytest.mark.parametrize("d", [2, 5])
def test_two_nn_recovers_the_dimension_of_a_flat_manifold_embedded_in_more_dimensions(d):
    rng = np.random.default_rng(d)
    latent = rng.uniform(size=(3000, d))
    embedding = rng.normal(size=(d, 40))  # a random linear embedding keeps the dimension
    estimate, _ = two_nn_dimension(latent @ embedding)
    assert abs(estimate - d) < 0.15 * d + 0.2


def test_a_noisy_filament_is_one_dimensional_at_large_scale_and_higher_at_small_scale():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 10, 4000)
    curve = np.stack([np.cos(t), np.sin(t), 0.3 * t], 1) @ rng.normal(size=(3, 20))
    points = curve + 0.003 * rng.normal(size=curve.shape)
    rows = dimension_vs_scale(points, min_points=250)
    assert rows[0]["scale_r2"] < rows[-1]["scale_r2"]
    assert rows[0]["dimension"] > 2 * rows[-1]["dimension"]
    assert abs(rows[-1]["dimension"] - 1) < 0.4


def test_too_few_points_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 64 points"):
        dimension_vs_scale(np.zeros((10, 3)) + np.arange(10)[:, None])
