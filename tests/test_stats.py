"""Known answers for the latent statistics: numpy references, Gaussians, known covariances, chi radii."""

from math import erf, sqrt

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ae_jax.numerics import stats

GAUSSIAN_FWHM = 2 * sqrt(2 * np.log(2))  # 2.3548 sigma


def numpy_histograms(z: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.stack([np.histogram(z[:, j], edges)[0] for j in range(z.shape[1])], axis=1)


def numpy_fwhm(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Brute-force reference: outermost bins at or above half maximum, linear interpolation between centres,
    an empty bin assumed beyond either end."""
    centres = (edges[:-1] + edges[1:]) / 2
    x = np.concatenate([[2 * centres[0] - centres[1]], centres, [2 * centres[-1] - centres[-2]]])
    widths = []
    for h in np.pad(counts.astype(np.float64), ((1, 1), (0, 0))).T:
        half = h.max() / 2
        if half == 0:
            widths.append(0.0)
            continue
        i, j = np.flatnonzero(h >= half)[[0, -1]]
        left = np.interp(half, [h[i - 1], h[i]], [x[i - 1], x[i]])
        right = np.interp(half, [h[j + 1], h[j]], [x[j + 1], x[j]])
        widths.append(right - left)
    return np.asarray(widths)


def edge_cases(edges: np.ndarray) -> np.ndarray:
    """float32 values on every edge and one float32 step either side of it, signed zeros, subnormals,
    values just inside and outside the range."""
    on = edges.astype(np.float32)
    tiny = np.float32(1e-45)
    values = [
        on,
        np.nextafter(on, np.float32(-np.inf)),
        np.nextafter(on, np.float32(np.inf)),
        np.float32([0.0, -0.0, tiny, -tiny, 1e-39, -1e-39, edges[0] - 5, edges[-1] + 5]),
    ]
    return np.concatenate(values)


@pytest.mark.parametrize(
    "bin_width,lo,hi", [(0.25, -12.0, 12.0), (0.05, 0.0, 20.0), (0.1, -3.0, 3.0), (1 / 3, -4.0, 4.0)]
)
def test_histogram_counts_equal_numpy_including_edge_values(bin_width, lo, hi):
    edges = stats.histogram_edges(bin_width, lo, hi)
    rng = np.random.default_rng(0)
    special = edge_cases(edges)
    z = rng.normal(0, (hi - lo) / 6, size=(3000, 3)).astype(np.float32)
    z[: len(special), 0] = special
    z[: len(special), 1] = special[::-1]
    counts = np.asarray(stats.component_histograms(z, bin_width, lo, hi, block=1024))
    assert counts.dtype == np.int32 and counts.shape == (len(edges) - 1, 3)
    np.testing.assert_array_equal(counts, numpy_histograms(z, edges))


def test_histogram_edges_refuse_a_range_that_is_not_whole_bins():
    np.testing.assert_array_equal(stats.histogram_edges(0.5, -1, 1), [-1, -0.5, 0, 0.5, 1])
    with pytest.raises(ValueError, match="whole number of bins"):
        stats.histogram_edges(0.3, 0.0, 1.0)
    with pytest.raises(ValueError, match="bin_width > 0"):
        stats.histogram_edges(0.0, -1.0, 1.0)


_EDGES = stats.histogram_edges(0.5, -2.0, 2.0)
_SPECIAL = edge_cases(_EDGES).tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(-3, 3, width=32), st.sampled_from(_SPECIAL)), min_size=48, max_size=48))
def test_histogram_property_counts_match_numpy_and_sum_to_points_in_range(values):
    z = np.asarray(values, np.float32).reshape(16, 3)
    counts = np.asarray(stats.component_histograms(z, 0.5, -2.0, 2.0))
    np.testing.assert_array_equal(counts, numpy_histograms(z, _EDGES))
    np.testing.assert_array_equal(counts.sum(axis=0), ((z >= -2.0) & (z <= 2.0)).sum(axis=0))


def test_fwhm_of_gaussians():
    """Tolerance: bins of 0.25 widen the measured FWHM of a Gaussian by +3.3% at sigma 0.5, +1% at 1 and
    +0.2% at 2 (computed here from the exact expected histogram); sampling 200,000 points moves it by
    about 0.5% (std), so the sample must match the expected histogram within 3% and 2.3548 sigma within
    the binning bias plus 3%."""
    mu, sigma = np.array([-1.0, 0.0, 2.5]), np.array([0.5, 1.0, 2.0])
    n = 200_000
    z = (np.random.default_rng(1).standard_normal((n, 3)) * sigma + mu).astype(np.float32)
    summary = stats.component_summary(z, 0.25, -12.0, 12.0)
    edges = stats.histogram_edges(0.25, -12.0, 12.0)
    cdf = np.vectorize(lambda x, m, s: 0.5 * (1 + erf((x - m) / (s * sqrt(2)))))
    expected_counts = np.stack([n * np.diff(cdf(edges, m, s)) for m, s in zip(mu, sigma)], axis=1)
    expected = np.asarray(stats.fwhm(expected_counts, edges))
    measured = np.asarray(summary["fwhm"])
    np.testing.assert_allclose(measured, expected, rtol=0.03)
    bias = expected / (GAUSSIAN_FWHM * sigma) - 1
    assert np.all(bias > 0) and np.all(bias < 0.035)
    assert np.all(np.abs(measured / (GAUSSIAN_FWHM * sigma) - 1) <= bias + 0.03)
    np.testing.assert_allclose(summary["mean"], mu, atol=float(5 * sigma.max() / sqrt(n)))
    np.testing.assert_allclose(summary["std"], sigma, rtol=0.01)
    # The peak is a bin centre; the flat top of a wide Gaussian lets sampling noise move it a little further.
    assert np.all(np.abs(np.asarray(summary["peak"]) - mu) <= 0.25 + 0.25 * sigma)


def test_fwhm_matches_brute_force_reference_on_awkward_histograms():
    edges = stats.histogram_edges(0.5, -3.0, 3.0)
    counts = np.zeros((12, 6), np.int32)
    counts[:, 0] = np.random.default_rng(0).integers(0, 50, 12)  # noisy
    counts[0, 1] = 9  # all in the first bin
    counts[-2:, 2] = [3, 8]  # peak in the last bin
    counts[[2, 9], 3] = [10, 10]  # two peaks: the outermost crossings span both
    counts[4:8, 4] = 7  # plateau
    # column 5 stays empty: width 0
    np.testing.assert_allclose(stats.fwhm(counts, edges), numpy_fwhm(counts, edges), rtol=1e-6, atol=1e-6)
    assert float(stats.fwhm(counts, edges)[3]) > 3.5


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([0.25, 0.5, 2.0, 4.0]), st.integers(0, 2**31 - 1))
def test_fwhm_scales_linearly_with_the_data(scale, seed):
    """Scaling data and bins by a power of two is exact in float32: same counts, FWHM times scale."""
    z = (np.random.default_rng(seed).standard_normal((500, 3)) * [0.5, 1, 2]).astype(np.float32)
    counts = stats.component_histograms(z, 0.25, -8.0, 8.0)
    scaled = stats.component_histograms(z * np.float32(scale), 0.25 * scale, -8.0 * scale, 8.0 * scale)
    np.testing.assert_array_equal(scaled, counts)
    width = stats.fwhm(counts, stats.histogram_edges(0.25, -8.0, 8.0))
    scaled_width = stats.fwhm(scaled, stats.histogram_edges(0.25 * scale, -8.0 * scale, 8.0 * scale))
    np.testing.assert_allclose(scaled_width, scale * np.asarray(width), rtol=1e-6)


def test_component_summary_matches_numpy():
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((5000, 4)) * [1, 3, 6, 0.2] + [0, 1, -2, 11.9]).astype(np.float32)
    s = stats.component_summary(z, 0.25, -12.0, 12.0)
    z64 = z.astype(np.float64)
    np.testing.assert_allclose(s["mean"], z64.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s["std"], z64.std(0), rtol=1e-5)
    np.testing.assert_array_equal(s["range"], np.stack([z.min(0), z.max(0)]))
    np.testing.assert_array_equal(s["outside"], ((z < -12) | (z > 12)).sum(0))
    assert int(s["outside"][2]) > 0 and int(s["outside"][3]) > 0


def test_dominant_components_and_summary_counts():
    mu = np.array([0.0, 0.3, -1.2, 0.1, 0.0, 0.0])
    hw = np.array([1.0, 1.0, 0.5, 1.6, 3.2, 1.49])
    # importance max(|mu| / 0.25, hw / 1.5): 2 -> 4.8, 4 -> 2.13, 1 -> 1.2, 3 -> 1.07, the rest below 1
    np.testing.assert_array_equal(stats.dominant_components(mu, hw, 0.25, 1.5), [2, 4, 1, 3])
    np.testing.assert_array_equal(stats.dominant_components(mu, hw, mu_min=2.0, fwhm_min=3.0), [4])
    z = np.array([[-3.5, 0.0], [0.0, 7.25]], np.float32)
    counts = stats.summary_counts(mu, hw, z, (0.25, 1.0), (1.0, 1.5, 3.0))
    assert counts == {
        "mu_abs_ge_0.25": np.sum(np.abs(mu) >= 0.25),
        "mu_abs_ge_1": np.sum(np.abs(mu) >= 1),
        "fwhm_ge_1": np.sum(hw >= 1),
        "fwhm_ge_1.5": np.sum(hw >= 1.5),
        "fwhm_ge_3": np.sum(hw >= 3),
        "value_range": [z.min(), z.max()],
    }


def test_radius_of_standard_normal_peaks_near_sqrt_n_minus_half():
    """|z| of N(0, I_n) follows a chi distribution: mean sqrt(n - 1/2) + O(n^-1.5), mode sqrt(n - 1)
    (0.016 below for n = 64), std sqrt(1/2); the fullest 0.05 bin of its flat top wanders by sampling noise
    (about 0.15 at 200,000 points), hence 0.25 for the peak."""
    n_dims = 64
    z = np.random.default_rng(3).standard_normal((200_000, n_dims), dtype=np.float32)
    r = stats.radii(z)
    np.testing.assert_allclose(r, np.linalg.norm(z.astype(np.float64), axis=1), rtol=1e-6)
    rs = stats.radius_stats(r, stats.radius_histogram(r, 0.05))
    assert abs(float(rs["mean"]) - sqrt(n_dims - 0.5)) < 0.01
    assert abs(float(rs["std"]) - sqrt(0.5)) < 0.01
    assert abs(float(rs["peak"]) - sqrt(n_dims - 0.5)) < 0.25
    counts, edges = stats.radius_histogram(r, 0.05)
    np.testing.assert_array_equal(counts, np.histogram(np.asarray(r), edges)[0])
    assert edges[0] == 0 and edges[-1] > float(np.max(r)) and counts.sum() == len(z)


def test_covariance_with_ddof_equals_numpy():
    mixing = np.float32([[2, 0, 0, 0], [1, 1, 0, 0], [0, 0, 3, 0], [0, 1, 0, 0.5]])
    z = np.random.default_rng(9).standard_normal((500, 4)).astype(np.float32) @ mixing + 5
    z64 = z.astype(np.float64)
    for ddof, bias in ((0, True), (1, False)):
        mean, cov = stats.covariance(z, ddof=ddof)
        np.testing.assert_allclose(mean, z64.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cov, np.cov(z64, rowvar=False, bias=bias), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stats.covariance(z)[1], stats.covariance(z, ddof=1)[1])
    assert stats.covariance(z[:1], ddof=0)[1].shape == (4, 4)


def test_covariance_centres_before_multiplying():
    """An offset of 40 against unit spreads: E[zz] - E[z]E[z] in float32 would be off by ~2e-4."""
    z = (np.random.default_rng(4).standard_normal((100_000, 6)) * [0.5, 1, 1, 2, 0.1, 1] + 40).astype(np.float32)
    mean, cov = stats.covariance(z, block=4096)
    reference = np.cov(z.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(mean, z.astype(np.float64).mean(0), rtol=1e-6)
    assert np.abs(np.asarray(cov) - reference).max() < 1e-5 * np.abs(reference).max()


def test_correlation_matches_numpy_and_handles_a_constant_component():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((2000, 4)).astype(np.float32)
    z[:, 1] += 0.8 * z[:, 0]
    z[:, 3] = 2.0
    corr = np.asarray(stats.correlation(stats.covariance(z)[1]))
    np.testing.assert_allclose(corr[:3, :3], np.corrcoef(z[:, :3], rowvar=False), atol=1e-5)
    np.testing.assert_array_equal(corr[3], [0, 0, 0, 1])
    assert np.all(np.isfinite(corr))


def test_pca_recovers_a_known_covariance():
    rng = np.random.default_rng(6)
    d = 5
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    variances = np.array([9.0, 4.0, 2.0, 1.0, 0.25])
    cov = q @ np.diag(variances) @ q.T
    z = (rng.multivariate_normal(np.arange(d, dtype=float), cov, size=50_000)).astype(np.float32)
    p = stats.pca(z)
    sample_variances, sample_vectors = np.linalg.eigh(np.cov(z.astype(np.float64), rowvar=False))
    np.testing.assert_allclose(p.explained_variance, sample_variances[::-1], rtol=1e-4)
    np.testing.assert_allclose(p.explained_variance, variances, rtol=0.03)  # sampling: ~sqrt(2/N) = 0.6%
    np.testing.assert_allclose(np.abs(np.sum(np.asarray(p.components) * q.T, axis=1)), 1.0, atol=0.01)
    np.testing.assert_allclose(np.asarray(p.components) @ np.asarray(p.components).T, np.eye(d), atol=1e-5)
    np.testing.assert_allclose(p.explained_variance_ratio, variances / variances.sum(), rtol=0.03)
    assert abs(float(np.sum(p.explained_variance_ratio)) - 1) < 1e-6
    coords = np.asarray(stats.pca_transform(p, z, 3))
    assert coords.shape == (len(z), 3)
    np.testing.assert_allclose(np.cov(coords, rowvar=False), np.diag(p.explained_variance[:3]), atol=2e-3 * 9)
    np.testing.assert_allclose(stats.project(z, (0, 2), p), coords[:, [0, 2]], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stats.project(z, (4, 1)), z[:, [4, 1]])
    with pytest.raises(ValueError, match="two axes"):
        stats.project(z, (0, d))


def test_window_selects_the_square():
    points = np.array([[0.0, 0.0], [1.0, -1.0], [1.01, 0.0], [2.5, 2.9], [-0.5, 3.1]], np.float32)
    np.testing.assert_array_equal(stats.window(points, 1.0), [True, True, False, False, False])
    np.testing.assert_array_equal(stats.window(points, 0.5, centre=(2.5, 2.5)), [False] * 3 + [True, False])


@pytest.mark.parametrize("k", [1, 3])
def test_knn_distances_equal_brute_force(k):
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((700, 6)) * 3 + 20).astype(np.float32)
    z[10] = z[20]  # a duplicate: its nearest other point is at distance 0
    z[30] = z[40] + 1e-3  # a close pair, where |q|^2 + |x|^2 - 2 q.x alone would lose the digits
    z64 = z.astype(np.float64)
    brute = np.sqrt(((z64[:, None, :] - z64[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(brute, np.inf)
    expected = np.sort(brute, axis=1)[:, k - 1]
    got = np.asarray(stats.knn_distances(z, k=k, block=128))  # 700 is not a multiple of 128
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    queries = np.array([40, 3, 10])
    np.testing.assert_allclose(stats.knn_distances(z, k=k, queries=queries), expected[queries], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3])
def test_knn_distances_count_ties_like_brute_force(k):
    """Integer coordinates: every distance is exact in float32, so tied neighbours must give the same value."""
    z = np.random.default_rng(10).integers(-3, 4, (300, 4)).astype(np.float32)
    brute = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(brute, np.inf)
    expected = np.sort(brute, axis=1)[:, k - 1].astype(np.float32)
    np.testing.assert_array_equal(stats.knn_distances(z, k, block=64), expected)
    queries = np.array([5, 5, 299, 0, 17])  # repeated, and not a whole block
    np.testing.assert_array_equal(stats.knn_distances(z, k, queries=queries, block=2), expected[queries])
    assert stats.knn_distances(z, k, queries=[]).shape == (0,)
    with pytest.raises(ValueError, match="row indices in 0..299"):
        stats.knn_distances(z, k, queries=[300])


def _brute_force_knn(z: np.ndarray, k: int) -> np.ndarray:
    """k-th nearest other row by float64 direct differences: the reference."""
    z64 = z.astype(np.float64)
    d = np.sqrt(((z64[:, None, :] - z64[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def _clustered(seed: int, clusters: int, per_cluster: int, dim: int, noise: float, offset: float) -> np.ndarray:
    """`clusters` Gaussian centres (spread 3) with `per_cluster` points each at `noise` around them, plus offset."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (clusters, dim)) + offset
    return (np.repeat(centres, per_cluster, 0) + rng.normal(0, noise, (clusters * per_cluster, dim))).astype(np.float32)


def test_knn_distances_exact_on_the_issue_27_near_duplicates():
    """20 clusters x 10 points in 64-D at noise 1e-3: the float32 expansion alone got 45-63 of 200 1-NN wrong by
    up to 20%."""
    z = _clustered(0, 20, 10, 64, 1e-3, 0.0)
    np.testing.assert_allclose(stats.knn_distances(z, 1), _brute_force_knn(z, 1), rtol=1e-5)


@pytest.mark.parametrize("k", [1, 30])
def test_knn_distances_exact_in_a_group_larger_than_the_first_candidates(k):
    """60 near-copies of one point far from the origin: more rows within the rounding bound than the first round
    re-ranks, so the later rounds (4x the candidates) must find the true neighbours."""
    z = np.concatenate([_clustered(1, 1, 60, 32, 1e-4, 50.0), _clustered(2, 10, 5, 32, 1.0, 0.0)])
    np.testing.assert_allclose(stats.knn_distances(z, k, block=16), _brute_force_knn(z, k), rtol=1e-5, atol=0)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    dim=st.sampled_from([3, 16, 64]),
    noise=st.sampled_from([1e-4, 1e-3, 1e-1, 3.0]),
    offset=st.sampled_from([0.0, 300.0]),
    duplicates=st.integers(0, 20),
    k=st.integers(1, 4),
)
def test_knn_distances_property_equal_float64_brute_force(seed, dim, noise, offset, duplicates, k):
    """Clustered, duplicated and offset points: every k-NN distance within float32 rounding of float64."""
    z = _clustered(seed, 12, 10, dim, noise, offset)
    rng = np.random.default_rng(seed)
    z[rng.choice(len(z), duplicates, replace=False)] = z[rng.choice(len(z), duplicates)]
    np.testing.assert_allclose(stats.knn_distances(z, k, block=64), _brute_force_knn(z, k), rtol=1e-5, atol=0)


def test_as_points_refuses_nan_naming_the_row():
    z = np.zeros((10, 3), np.float64)
    assert stats.as_points(z).dtype == np.float32
    z[6, 2] = np.nan
    with pytest.raises(ValueError, match="generated has 1 of 10 rows with NaN or Inf; the first is row 6"):
        stats.as_points(z, "generated")
    with pytest.raises(ValueError, match="must hold numbers, got dtype <U1"):
        stats.as_points(np.full((2, 2), "a"))
    with pytest.raises(ValueError, match="real needs at least 2 points, got 1"):
        stats.as_points(np.zeros((1, 3)), "real", min_points=2)
    # Traced values cannot be checked; the shape still is.
    assert jax.jit(lambda x: stats.as_points(x) * 0)(z).shape == (10, 3)


def test_bad_input_gives_clear_errors():
    z = np.zeros((10, 3), np.float32)
    stats.as_points(z)
    z[4, 1], z[7, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match="2 of 10 rows with NaN or Inf; the first is row 4"):
        stats.as_points(z)
    with pytest.raises(ValueError, match=r"shape \(N points, D components\)"):
        stats.as_points(np.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(N points, D components\)"):
        stats.component_histograms(np.zeros((2, 3, 4)), 0.25, -1.0, 1.0)
    with pytest.raises(ValueError, match="covariance needs at least 2 points, got 1"):
        stats.covariance(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="k=3 needs at least 4 points, got 3"):
        stats.knn_distances(np.zeros((3, 2)), k=3)
    with pytest.raises(ValueError, match="perplexity 10.0 needs at least 31 points"):
        stats.tsne(np.zeros((20, 3)), perplexity=10.0)
    with pytest.raises(ValueError, match="n_components must be in 1..3"):
        stats.pca_transform(stats.pca(np.eye(3)), np.eye(3), 4)


def test_tsne_embeds_in_two_dimensions():
    rng = np.random.default_rng(8)
    z = np.concatenate([rng.normal(-5, 1, (60, 10)), rng.normal(5, 1, (60, 10))]).astype(np.float32)
    fast = dict(n_iter=30, early_exaggeration_iter=20, n_jobs=1)
    for n_pca in (None, 2):
        embedding = stats.tsne(z, n_pca=n_pca, perplexity=10.0, early_exaggeration=16.0, **fast)
        assert embedding.shape == (120, 2) and np.all(np.isfinite(embedding))
        # the two clusters stay apart: each point's nearest embedded neighbour is from its own cluster
        d = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        assert np.mean((np.argmin(d, axis=1) < 60) == (np.arange(120) < 60)) > 0.95


def test_shuffle_columns_keeps_marginals_and_breaks_dependence():
    """Each column keeps its values; two identical columns stop being identical (their dependence is gone)."""
    x = jax.random.normal(jax.random.key(1), (2000,))
    z = jax.numpy.stack([x, x, 2 * x], axis=1)
    shuffled = np.asarray(stats.shuffle_columns(jax.random.key(2), z))
    for j in range(3):
        np.testing.assert_array_equal(np.sort(shuffled[:, j]), np.sort(np.asarray(z[:, j])))
    assert abs(np.corrcoef(shuffled[:, 0], shuffled[:, 1])[0, 1]) < 0.1
    assert np.corrcoef(np.asarray(z[:, 0]), np.asarray(z[:, 1]))[0, 1] > 0.99


def test_bootstrap_interval_holds_the_estimate_when_resamples_are_skewed():
    """A discrete statistic's resamples: 99 at 1 and one at 100 put their mean (1.99) above both quantiles, so
    the basic interval alone would lie wholly below the estimate 1."""
    resampled = np.array([1.0] * 99 + [100.0])
    low, high = np.asarray(stats.bootstrap_interval(1.0, resampled))
    assert low <= 1.0 <= high
