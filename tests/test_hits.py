"""Hit analysis: box hits, analytic vs Monte Carlo probabilities, manifold precision/recall, radius tables, figures."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ae_jax.evaluators import generators_plots as P
from ae_jax.numerics import hits as H
from ae_jax.numerics import samplers as S
from ae_jax.numerics import stats
from ae_jax.report import plots

KEY = jax.random.PRNGKey(0)


def _region(rng, d):
    return rng.uniform(-0.5, 0.5, d), rng.uniform(0.5, 1.5, d)


def _within_binomial_error(fraction, probability, n, sigmas=5):
    return abs(fraction - probability) <= sigmas * math.sqrt(probability * (1 - probability) / n) + 1 / n


# ---------------------------------------------------------------------------------------------
# Box hits.


def test_box_hits_and_hit_fraction_match_numpy():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2000, 6))
    mu, fwhm = _region(rng, 6)
    ks = np.array([0.5, 1.0, 2.0, 3.0])
    reference = np.stack([np.all(np.abs(points - mu) <= k * fwhm, 1) for k in ks])
    for k, expected in zip(ks, reference):
        np.testing.assert_array_equal(H.box_hits(points, mu, fwhm, k), expected)
    np.testing.assert_allclose(H.hit_fraction(points, mu, fwhm, ks), reference.mean(1), rtol=1e-6)
    inside_jit = jax.jit(lambda p, m, h: H.hit_fraction(p, m, h, ks))(points, mu, fwhm)
    np.testing.assert_allclose(inside_jit, reference.mean(1), rtol=1e-6)
    np.testing.assert_allclose(H.box_k(points, mu, fwhm), np.max(np.abs(points - mu) / fwhm, 1), rtol=1e-6)


@pytest.mark.parametrize(
    "mu, fwhm, message",
    [
        (np.zeros(3), np.ones(4), "mu must have shape \\(4,\\)"),
        (np.zeros(4), np.array([1.0, 0.0, 1.0, 1.0]), "fwhm finite and > 0"),
        (np.array([0, np.nan, 0, 0]), np.ones(4), "mu must be finite"),
    ],
)
def test_box_hits_refuse_a_bad_region(mu, fwhm, message):
    with pytest.raises(ValueError, match=message):
        H.box_hits(np.zeros((5, 4)), mu, fwhm, 1.0)


def test_analytic_hit_probability_matches_monte_carlo():
    rng = np.random.default_rng(1)
    n, ks = 200_000, [1.0, 1.5, 2.0, 3.0]
    uniform_d, diagonal_d = 8, 16
    mu_u, hw_u = _region(rng, uniform_d)
    mu_d, hw_d = _region(rng, diagonal_d)
    uniform = [S.UniformBoxSampler(b, uniform_d) for b in (1.5, 2.5, 4.0)]
    diagonal = [
        S.DiagonalGaussianSampler(
            jnp.asarray(mu_d + rng.normal(0, 0.3, diagonal_d), jnp.float32),
            jnp.asarray(hw_d * rng.uniform(0.6, 1.2, diagonal_d), jnp.float32),
        )
    ]
    rows = H.hit_table(uniform, mu_u, hw_u, ks, KEY, num_samples=n, block_size=50_000) + H.hit_table(
        diagonal, mu_d, hw_d, ks, KEY, num_samples=n, block_size=50_000
    )
    assert len(rows) == 4 * len(ks)
    measurable = [r for r in rows if 1e-3 < 10 ** r["log10_analytic"] < 1]
    assert len(measurable) >= 8, "the test needs probabilities Monte Carlo can measure"
    for r in rows:
        assert r["mc_samples"] == n
        assert _within_binomial_error(r["mc_fraction"], 10 ** r["log10_analytic"], n), r


def test_diagonal_mixture_hit_probability_matches_monte_carlo():
    rng = np.random.default_rng(2)
    d, n, weights = 6, 100_000, np.array([0.7, 0.3])
    means, stds = rng.normal(0, 1, (2, d)), rng.uniform(0.5, 1.5, (2, d))
    mixture = S.GaussianMixtureSampler(
        jnp.asarray(weights), jnp.asarray(means, jnp.float32), jnp.asarray(stds**2, jnp.float32), jnp.zeros(1), "diag"
    )
    component = rng.choice(2, n, p=weights)
    points = means[component] + stds[component] * rng.normal(size=(n, d))
    mu, fwhm = _region(rng, d)
    ks = np.array([1.0, 2.0, 3.0])
    analytic = 10 ** np.asarray(H.log10_hit_probability(mixture, mu, fwhm, ks))
    for fraction, probability in zip(np.asarray(H.hit_fraction(points, mu, fwhm, ks)), analytic):
        assert _within_binomial_error(fraction, probability, n)
    # Its per-component marginals agree with Monte Carlo too.
    lo, hi = mu - fwhm, mu + fwhm
    marginal = np.exp(np.asarray(mixture.component_log_prob_inside(jnp.asarray(lo), jnp.asarray(hi))))
    for fraction, probability in zip(np.mean((points >= lo) & (points <= hi), 0), marginal):
        assert _within_binomial_error(fraction, probability, n)


def test_grid_boxes_with_edges_on_grid_values_count_as_enumerated():
    """Boxes on a 0.05 lattice put edges exactly on the grid's 0.5-spaced values; the analytic count and the
    enumeration must agree on every one (issue 27: 14 of these 400 disagreed, e.g. 0.6 against 0.8)."""
    rng = np.random.default_rng(0)
    grid = S.GridSampler(-1.0, 1.0, 5, 1)
    points = grid.sample(KEY)
    ks = jnp.array([1.0, 1.5, 2.0, 3.0])
    disagree = 0
    for mu, fwhm in zip(rng.integers(-20, 21, 400) * 0.05, rng.integers(1, 20, 400) * 0.05):
        mu, fwhm = jnp.array([mu], jnp.float32), jnp.array([fwhm], jnp.float32)
        counted = 10 ** np.asarray(H.log10_hit_probability(grid, mu, fwhm, ks))
        disagree += not np.allclose(counted, np.asarray(H.hit_fraction(points, mu, fwhm, ks)), atol=1e-6)
    assert disagree == 0


def test_grid_hit_probability_is_the_exact_count():
    rng = np.random.default_rng(3)
    grid = S.GridSampler(-2.1, 1.9, 5, 4)
    mu, fwhm = _region(rng, 4)
    ks = [0.7, 1.3, 2.5]
    rows = H.hit_table([grid], mu, fwhm, ks, KEY)
    points = np.asarray(grid.sample(KEY))
    for r, k in zip(rows, ks):
        exact = np.sum(np.all(np.abs(points - mu) <= k * fwhm, 1))
        assert r["mc_samples"] == grid.num_points and r["mc_hits"] == exact
        np.testing.assert_allclose(10 ** r["log10_analytic"] * grid.num_points, exact, rtol=1e-4)


def test_full_covariance_has_no_closed_form_box_probability():
    rng = np.random.default_rng(4)
    full = S.FullGaussianSampler.fit(rng.normal(size=(500, 3)) @ rng.normal(size=(3, 3)))
    mu, fwhm = _region(rng, 3)
    assert H.log10_hit_probability(full, mu, fwhm, 2.0) is None
    (row,) = H.hit_table([full], mu, fwhm, [2.0], KEY, num_samples=1000, block_size=1000)
    assert row["log10_analytic"] is None and 0 < row["mc_hits"] <= 1000
    assert "MC only" in H.format_hit_table([row])


def test_tiny_probabilities_come_out_as_finite_powers_of_ten():
    d, k = 220, 3.0
    mu, fwhm = np.zeros(d), np.ones(d)
    log10_uniform = float(H.log10_hit_probability(S.UniformBoxSampler(12.0, d), mu, fwhm, k))
    np.testing.assert_allclose(log10_uniform, d * math.log10(2 * k / 24.0), rtol=1e-5)
    # A Gaussian far from the box: per component P(6 < x < 7) for N(0, 1), from float64 erfc.
    gaussian = S.IsotropicGaussianSampler(-6.5, 1.0, d)
    per_component = 0.5 * (math.erfc(6 / math.sqrt(2)) - math.erfc(7 / math.sqrt(2)))
    log10_gaussian = H.log10_hit_probability(gaussian, mu, np.full(d, 0.5), np.array([1.0]))
    np.testing.assert_allclose(log10_gaussian, [d * math.log10(per_component)], rtol=1e-5)
    assert log10_uniform < -100 and log10_gaussian[0] < -1000
    # Out of reach in one component: probability exactly zero, reported as -inf, not NaN.
    assert H.log10_hit_probability(S.UniformBoxSampler(1.0, d), mu + 5, fwhm, 1.0) == -np.inf


# ---------------------------------------------------------------------------------------------
# Manifold precision and recall.


def _brute_force_radii(points, k):
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    return np.sort(distances, 1)[:, k]  # column 0 is the point itself


def _brute_force_share(support, radii, queries):
    distances = np.linalg.norm(queries[:, None] - support[None], axis=-1)
    return np.mean(np.any(distances <= radii, 1))


def test_manifold_precision_and_recall_equal_brute_force():
    rng = np.random.default_rng(5)
    # Integer coordinates: distances are exact in float32 too, so ties on the radius count identically.
    real = rng.integers(-4, 5, (150, 4)).astype(np.float32)
    generated = rng.integers(-2, 7, (97, 4)).astype(np.float32)  # overlaps part of the real points
    k = 3
    real_radii, gen_radii = stats.knn_distances(real, k, block=32), stats.knn_distances(generated, k, block=32)
    np.testing.assert_allclose(real_radii, _brute_force_radii(real, k), rtol=1e-6)
    np.testing.assert_allclose(gen_radii, _brute_force_radii(generated, k), rtol=1e-6)
    precision = float(H.manifold_precision(real, real_radii, generated, block_size=16))
    recall = float(H.manifold_recall(generated, gen_radii, real, block_size=16))
    # Same counts (the tolerance only absorbs float32 division; one point changes the share by 1/150).
    np.testing.assert_allclose(precision, _brute_force_share(real, np.asarray(real_radii), generated), rtol=1e-6)
    np.testing.assert_allclose(recall, _brute_force_share(generated, np.asarray(gen_radii), real), rtol=1e-6)
    assert 0 < precision < 1 and 0 < recall < 1


def test_density_and_coverage_equal_brute_force():
    rng = np.random.default_rng(5)
    real = rng.integers(-4, 5, (150, 4)).astype(np.float32)  # integer coordinates: exact distances, exact ties
    generated = rng.integers(-2, 7, (97, 4)).astype(np.float32)
    k = 3
    radii = stats.knn_distances(real, k, block=32)
    inside = np.linalg.norm(generated[:, None] - real[None], axis=-1) <= np.asarray(radii)  # (generated, real)
    counts, reached = H.ball_membership(real, radii, generated, block_size=16)  # 97 = 6 blocks and a padded one
    np.testing.assert_array_equal(counts, inside.sum(1))
    np.testing.assert_array_equal(reached, inside.any(0))
    assert float(H.density(real, radii, generated, k, block_size=16)) == pytest.approx(inside.sum() / (k * 97))
    assert float(H.coverage(real, radii, generated, block_size=16)) == pytest.approx(inside.any(0).mean())
    assert 0 < float(H.coverage(real, radii, generated)) < 1


def test_a_collapsed_generator_keeps_its_precision_and_loses_its_coverage_and_recall():
    """Naeem et al.'s point, and issue 28's grey blobs: points piled on one real point are all precise."""
    real = np.random.default_rng(8).normal(size=(400, 6)).astype(np.float32)
    radii = stats.knn_distances(real, 5)
    collapsed = np.repeat(real[:1], 400, axis=0) + 1e-3
    assert float(H.manifold_precision(real, radii, collapsed)) == 1.0
    assert float(H.coverage(real, radii, collapsed)) < 0.05
    assert float(H.manifold_recall(collapsed, stats.knn_distances(collapsed, 5), real)) < 0.05
    assert float(H.coverage(real, radii, real)) == 1.0 and float(H.density(real, radii, real, 5)) > 1.0


def test_manifold_precision_recall_extremes():
    real = np.random.default_rng(6).normal(size=(300, 8)).astype(np.float32)
    radii = stats.knn_distances(real, 5, block=64)
    np.testing.assert_allclose(radii, _brute_force_radii(real, 5), rtol=1e-4)
    assert float(H.manifold_precision(real, radii, real)) == 1.0
    assert float(H.manifold_recall(real, radii, real)) == 1.0
    assert float(H.manifold_precision(real, radii, real + 100.0)) == 0.0


def test_manifold_precision_recall_do_not_depend_on_an_offset():
    """Points on a 1/256 grid: adding 300 is exact, so precision and recall must not move (issue 27: 0.6753
    against 0.6780 before the points were centred)."""
    rng = np.random.default_rng(0)
    real = np.round(rng.normal(size=(1500, 16)) * 256) / 256
    generated = np.round(rng.normal(size=(1500, 16)) * 1.1 * 256) / 256
    values = []
    for offset in (0.0, 300.0):
        r, g = (real + offset).astype(np.float32), (generated + offset).astype(np.float32)
        precision = float(H.manifold_precision(r, stats.knn_distances(r, 3), g))
        recall = float(H.manifold_recall(g, stats.knn_distances(g, 3), r))
        values.append((precision, recall))
    assert values[0] == values[1]
    assert 0 < values[0][0] < 1 and 0 < values[0][1] < 1


def test_manifold_functions_refuse_bad_input():
    real = np.zeros((10, 3))
    with pytest.raises(ValueError, match="k must be an int in \\[1, 9\\]"):
        stats.knn_distances(real, 10)
    with pytest.raises(ValueError, match="real_radii must have shape \\(10,\\)"):
        H.manifold_precision(real, np.ones(9), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="same width"):
        H.manifold_recall(real, np.ones(10), np.zeros((4, 2)))


# ---------------------------------------------------------------------------------------------
# Wilson intervals of shares of hits.


def test_wilson_interval_matches_its_formula_and_holds_the_share():
    hits, n = np.array([0, 1, 37, 999, 1000]), 1000
    low, high = np.asarray(H.wilson_interval(hits, n)).T
    z, p = 1.959964, hits / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    np.testing.assert_allclose(low, np.maximum(centre - half, 0), atol=1e-6)
    np.testing.assert_allclose(high, np.minimum(centre + half, 1), atol=1e-6)
    assert np.all((low <= p) & (p <= high)) and low[0] == 0 and high[-1] == 1
    assert high[0] == pytest.approx(z**2 / (n + z**2), rel=1e-5)  # no hit still bounds the share
    assert float(H.wilson_interval(0, 170_000)[1]) < 10 / 170_000 < float(H.wilson_interval(0, 1000)[1])


def test_wilson_interval_covers_the_probability_about_95_percent_of_the_time():
    rng = np.random.default_rng(9)
    for p, n in ((0.3, 40), (0.02, 500)):
        low, high = np.asarray(H.wilson_interval(rng.binomial(n, p, 4000), n)).T
        assert 0.92 < np.mean((low <= p) & (p <= high)) < 0.98


def test_uniform_hit_table_is_the_unit_stream_scaled_to_every_bound():
    rng = np.random.default_rng(10)
    mu, fwhm = _region(rng, 5)
    ks, n = [1.0, 2.0], 20_000
    rows = H.uniform_hit_table([1.0, 0.5, 3.0], mu, fwhm, ks, KEY, num_samples=n, block_size=3000)
    unit = H.hit_table([S.UniformBoxSampler(bound=1.0, z_dim=5)], mu, fwhm, ks, KEY, n, block_size=3000)
    assert rows[:2] == unit  # the same stream as hit_table's first sampler
    for r in rows:
        assert r["mc_low"] <= r["mc_fraction"] <= r["mc_high"] and r["mc_samples"] == n
        assert _within_binomial_error(r["mc_fraction"], 10 ** r["log10_analytic"], n)
    assert [r["bound"] for r in rows] == [1.0, 1.0, 0.5, 0.5, 3.0, 3.0]


# ---------------------------------------------------------------------------------------------
# Radius statistics.


def test_radius_moments_mc_and_radius_table():
    rng = np.random.default_rng(7)
    points = rng.normal(size=(500, 5)) * 2
    radii = np.linalg.norm(points, axis=1)
    np.testing.assert_allclose(H.radius_moments_mc(points), [radii.mean(), radii.std()], rtol=1e-5)
    # The grid is enumerated completely, in blocks that do not divide its 64 points; analytic moments are exact
    # for |z|^2 and within the delta method's error for |z| (random streams: see the hit-table tests).
    grid = S.GridSampler(-1.0, 2.0, 4, 3)
    (row,) = H.radius_table([grid], KEY, block_size=10)
    grid_radii = np.linalg.norm(np.asarray(grid.sample(KEY)), axis=1)
    assert row["mc_samples"] == grid.num_points and row["method"] == "delta method"
    np.testing.assert_allclose([row["mc_mean"], row["mc_std"]], [grid_radii.mean(), grid_radii.std()], rtol=1e-5)
    np.testing.assert_allclose(
        [float(v) for v in grid.squared_radius_moments()], [np.mean(grid_radii**2), np.var(grid_radii**2)], rtol=1e-5
    )
    np.testing.assert_allclose([row["mean"], row["std"]], [grid_radii.mean(), grid_radii.std()], rtol=0.1)


# ---------------------------------------------------------------------------------------------
# Figures.


def _png_size(path):
    with Image.open(path) as image:
        return image.size


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(8)
    data = np.abs(rng.normal(10, 1, 1000))
    path = P.radius_plot(
        data, {"isotropic": rng.normal(9, 1, 1000)}, str(tmp_path / "radius.png"), analytic={"isotropic": (9.0, 1.0)}
    )
    assert min(_png_size(path)) > 100
    rows = [
        dict(
            bound=b,
            k=k,
            log10_analytic=-b * k,
            mc_hits=int(1000 * 10 ** (-b * k)),
            mc_samples=1000,
            mc_fraction=10 ** (-b * k),
        )
        for b in (1.0, 2.0, 3.0)
        for k in (0.5, 1.0)
    ]
    assert min(_png_size(P.hit_fraction_plot(rows, str(tmp_path / "hits.png")))) > 100
    images = rng.uniform(size=(10, 8, 8, 3))
    grid_path = plots.image_grid_png(images, str(tmp_path / "grid.png"), "decoded", ncols=4)
    rows_path = plots.image_rows_png(
        [("b=1", images[:5]), ("b=2", images[5:]), ("reconstructions", images[:3])],
        str(tmp_path / "rows.png"),
        "decoded by bound",
    )
    assert min(_png_size(grid_path)) > 50 and min(_png_size(rows_path)) > 50
    gray = plots.image_grid_png(images[..., :1], str(tmp_path / "gray.png"), "gray")
    assert min(_png_size(gray)) > 20


def test_save_figure_writes_atomically_and_closes(tmp_path):
    import matplotlib.pyplot as plt

    from ae_jax.evaluators import distribution_plots

    folder = tmp_path / "new" / "folder"
    path = distribution_plots.histogram(np.array([1, 3, 2]), np.array([0.0, 1, 2, 3]), str(folder / "h.png"), "x", "t")
    assert min(_png_size(path)) > 100 and os.listdir(folder) == ["h.png"] and not plt.get_fignums()
    fig, ax = plt.subplots()
    ax.set(xlabel="x", ylabel="y")
    with pytest.raises(ValueError):
        plots.save_figure(fig, str(folder / "h.unknown-format"))
    assert os.listdir(folder) == ["h.png"] and not plt.get_fignums()  # no partial file left behind


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((2, 4, 4, 3), np.nan), "finite values in \\[0, 1\\]"),
        (np.full((2, 4, 4, 3), 1.5), "finite values in \\[0, 1\\]"),
        (np.zeros((2, 4, 4)), "shape \\(n, H, W, C\\)"),
    ],
)
def test_image_figures_refuse_bad_images(images, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        plots.image_grid_png(images, str(tmp_path / "bad.png"), "bad")


def test_radius_plot_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="generated_radii\\['x'\\]"):
        P.radius_plot(np.ones(5), {"x": np.array([1.0, np.nan])}, str(tmp_path / "r.png"))
