import jax
import numpy as np
import pytest

from ae_jax import config as config_lib
from ae_jax.evaluators.intrinsic_dimension import dimension_sweep, sample_sizes
from ae_jax.numerics import stats


def _brute_force_neighbours(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted float64 distances and indices of each row's k nearest other rows: the reference."""
    z64 = z.astype(np.float64)
    d = np.sqrt(((z64[:, None, :] - z64[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), order


def test_knn_all_ranks_gives_every_rank_and_its_row_in_one_call():
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(300, 8)) + 40).astype(np.float32)  # an offset: the expansion alone loses digits
    z[7] = z[9] + 1e-4
    expected, rows = _brute_force_neighbours(z, 6)
    distances, indices = stats.knn_distances(z, 6, block=64, all_ranks=True)
    np.testing.assert_allclose(distances, expected, rtol=1e-5, atol=0)
    np.testing.assert_array_equal(indices, rows)  # continuous data: no ties
    np.testing.assert_array_equal(stats.knn_distances(z, 6, block=64), distances[:, -1])


def test_knn_among_first_rows_equals_knn_of_the_prefix():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(200, 5)).astype(np.float32)
    z[150] = z[3]  # a duplicate of a prefix row outside the prefix must not count
    alone = stats.knn_distances(z[:120], 4, all_ranks=True)
    shared = stats.knn_distances(z, 4, all_ranks=True, among_first=120)
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a, b)
    assert np.asarray(shared[1]).max() < 120
    with pytest.raises(ValueError, match="k=4 needs at least 5 points, got 4"):
        stats.knn_distances(z, 4, among_first=4)
    with pytest.raises(ValueError, match="among_first must be in 1..200"):
        stats.knn_distances(z, 4, among_first=201)
    with pytest.raises(ValueError, match="row indices in 0..119"):
        stats.knn_distances(z, 4, queries=[130], among_first=120)


@pytest.mark.parametrize("d", [2, 5])
def test_two_nn_and_mle_recover_the_dimension_of_a_flat_manifold_in_more_dimensions(d):
    rng = np.random.default_rng(d)
    points = (rng.uniform(size=(3000, d)) @ rng.normal(size=(d, 40))).astype(np.float32)
    distances, _ = stats.knn_distances(points, 10, all_ranks=True)
    rows = stats.bootstrap_rows(jax.random.key(0), 3000, 100)
    for k in (2, 10):
        estimate, replicates = stats.ratio_of_sums(*stats.mle_dimension_terms(distances, k), rows)
        assert abs(float(estimate) - d) < 0.15 * d
        low, high = stats.bootstrap_interval(estimate, replicates)
        assert low < estimate < high and high - low < 0.3 * d


def test_duplicates_carry_no_weight_in_the_mle():
    distances = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 4.0], [1.0, 4.0, 4.0]], np.float32)
    counts, logs = (np.asarray(a) for a in stats.mle_dimension_terms(distances, 3))
    np.testing.assert_array_equal(counts, [0, 2, 2])
    np.testing.assert_allclose(logs, [0, np.log(4) + np.log(2), np.log(4)], rtol=1e-6)
    with pytest.raises(ValueError, match="k in 2..3"):
        stats.mle_dimension_terms(distances, 4)


def test_local_principal_share_is_one_on_a_line_and_small_in_a_ball():
    rng = np.random.default_rng(5)
    line = (rng.uniform(size=(200, 1)) * rng.normal(size=(1, 12))).astype(np.float32)
    ball = rng.normal(size=(200, 12)).astype(np.float32)
    repeated = np.zeros((200, 12), np.float32)
    neighbours = np.asarray(stats.knn_distances(line, 8, queries=np.arange(20), all_ranks=True)[1])
    for points, low, high in ((line, 0.999, 1.0), (ball, 0.1, 0.5)):
        shares, weights = stats.local_principal_share(points, neighbours)
        assert np.all((low <= shares) & (shares <= high + 1e-6)) and np.all(weights == 1)
    assert np.all(np.asarray(stats.local_principal_share(repeated, neighbours)[1]) == 0)


def test_ratio_of_sums_resamples_the_given_rows():
    estimate, replicates = stats.ratio_of_sums([1.0, 2.0, 3.0], [1.0, 1.0, 2.0], np.array([[0, 0, 0], [1, 2, 2]]))
    assert float(estimate) == 1.5
    np.testing.assert_allclose(replicates, [1.0, 8 / 5])


def test_sample_sizes_halve_down_to_the_smallest_subset():
    assert sample_sizes(100, 20, 80) == [80, 40, 20]
    assert sample_sizes(50, 20, 80) == [50, 25]
    with pytest.raises(ValueError, match="at least 64 points, got 10"):
        sample_sizes(10, 64, 100)


def test_a_noisy_filament_is_one_dimensional_at_large_scale_and_higher_at_small_scale():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 10, 4000)
    curve = np.stack([np.cos(t), np.sin(t), 0.3 * t], 1) @ rng.normal(size=(3, 20))
    points = (curve + 0.003 * rng.normal(size=curve.shape)).astype(np.float32)
    rows = dimension_sweep(points, sample_sizes(4000, 250, 4000), 10, jax.random.key(0), 50)
    assert rows[0]["scale_r2"] < rows[-1]["scale_r2"]
    for estimator, factor in (("two_nn", 2), ("mle", 1.5)):  # the MLE's 10 neighbours see past more of the noise
        assert rows[0][estimator][0] > factor * rows[-1][estimator][0]
        assert abs(rows[-1][estimator][0] - 1) < 0.4


@pytest.mark.parametrize(
    "override",
    [
        "intrinsic.mle_k=1",
        "intrinsic.mle_k=32",  # not below min_points (32): the smallest subset has no 32 other points
        "intrinsic.local_pca_k=40",
        "intrinsic.local_pca_points=0",
        "intrinsic.bootstrap_resamples=1",
    ],
)
def test_bad_intrinsic_settings_are_refused_naming_the_key(override):
    with pytest.raises(config_lib.ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        config_lib.load("case1", [override])
    assert config_lib.load("case1", ["intrinsic.mle_k=31", "intrinsic.local_pca_k=2"]).intrinsic.mle_k == 31
