"""Samplers: draws follow their distributions, fits recover known parameters, closed forms match Monte Carlo."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.numerics import samplers as S

KEY = jax.random.PRNGKey(0)
FLOAT32_TOL = 50 * np.finfo(np.float32).eps


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + np.diag(rng.uniform(0.2, 1.0, d))


def _mixture(weights, means, covariances, covariance="full"):
    return S.GaussianMixtureSampler(
        *(jnp.asarray(a, jnp.float32) for a in (weights, means, covariances)), jnp.zeros(1), covariance
    )


def _mixture_moments(weights, means, covs):
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, covs + np.einsum("ki,kj->kij", means, means))
    return mean, second - np.outer(mean, mean)


def _draw_numpy(rng, name, n, d, scale):
    """(sampler, draws from the same distribution by numpy) for the radius checks."""
    if name == "uniform":
        return S.UniformBoxSampler(scale, d), rng.uniform(-scale, scale, (n, d))
    if name == "isotropic_centred":
        return S.IsotropicGaussianSampler(0.0, scale, d), scale * rng.normal(size=(n, d))
    if name == "isotropic_offset":
        return S.IsotropicGaussianSampler(scale / 2, scale, d), scale / 2 + scale * rng.normal(size=(n, d))
    if name == "diagonal":
        mean, std = rng.normal(size=d), scale * rng.uniform(0.5, 1.5, d)
        sampler = S.DiagonalGaussianSampler(jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32))
        return sampler, mean + std * rng.normal(size=(n, d))
    if name == "full":
        mean, cov = rng.normal(size=d), scale**2 * _random_cov(rng, d)
        chol = np.linalg.cholesky(cov)
        sampler = S.FullGaussianSampler(*(jnp.asarray(a, jnp.float32) for a in (mean, cov, chol, 0.0)))
        return sampler, mean + rng.normal(size=(n, d)) @ chol.T
    weights = np.array([0.5, 0.3, 0.2])
    means, stds = scale * rng.normal(size=(3, d)), scale * rng.uniform(0.5, 1.5, (3, d))
    component = rng.choice(3, n, p=weights)
    return (_mixture(weights, means, stds**2, "diag"), means[component] + stds[component] * rng.normal(size=(n, d)))


# ---------------------------------------------------------------------------------------------
# Sampling.


def test_samples_follow_each_distribution_under_jit():
    rng = np.random.default_rng(0)
    d, n = 3, 20_000
    cov = _random_cov(rng, d)
    data = rng.multivariate_normal(rng.normal(size=d), cov, 2000)
    weights, means = np.array([0.6, 0.4]), np.array([[-3.0, 0, 1], [2, 2, 0]])
    covs = np.stack([_random_cov(rng, d), _random_cov(rng, d)])
    diagonal, full = S.DiagonalGaussianSampler.fit(data), S.FullGaussianSampler.fit(data)
    grid = S.GridSampler(-1.0, 2.0, 4, d)
    samplers = dict(
        uniform=S.UniformBoxSampler(2.0, d),
        isotropic=S.IsotropicGaussianSampler(0.5, 1.5, d),
        diagonal=diagonal,
        full=full,
        mixture=_mixture(weights, means, covs),
        grid=grid,
    )
    expected = dict(
        uniform=(np.zeros(d), np.eye(d) * 4 / 3),
        isotropic=(np.full(d, 0.5), np.eye(d) * 2.25),
        diagonal=(np.asarray(diagonal.mean), np.diag(np.asarray(diagonal.std) ** 2)),
        full=(np.asarray(full.mean), np.asarray(full.covariance)),
        mixture=_mixture_moments(weights, means, covs),
        grid=(np.full(d, 0.5), np.eye(d) * np.var(np.linspace(-1, 2, 4))),
    )

    draw = jax.jit(lambda samplers, key: {name: s.sample(key, n) for name, s in samplers.items()})
    draws, again = draw(samplers, KEY), draw(samplers, jax.random.PRNGKey(1))
    for name, (mean, cov) in expected.items():
        z = np.asarray(draws[name], np.float64)
        assert z.shape == ((grid.num_points if name == "grid" else n), d), name
        centred = z - z.mean(0)
        products = centred[:, :, None] * centred[:, None, :]
        # Tolerances: 5 standard errors of the sample mean and of each sample covariance entry.
        np.testing.assert_array_less(np.abs(z.mean(0) - mean), 5 * z.std(0) / np.sqrt(len(z)) + 1e-6, err_msg=name)
        np.testing.assert_array_less(
            np.abs(products.mean(0) - cov), 5 * products.std(0) / np.sqrt(len(z)) + 1e-6, err_msg=name
        )
        assert (name == "grid") == np.array_equal(draws[name], again[name]), f"{name}: key must matter"
    assert np.all(np.abs(draws["uniform"]) <= 2.0)


def test_grid_enumerates_row_major_and_returns_first_points():
    grid = S.GridSampler(-1.0, 1.0, 3, 3)
    axis = np.linspace(-1, 1, 3)
    expected = np.array(list(itertools.product(axis, repeat=3)))
    np.testing.assert_allclose(grid.sample(KEY), expected, atol=1e-7)
    np.testing.assert_allclose(grid.sample(KEY, 5), expected[:5], atol=1e-7)
    assert grid.sample(KEY, 10 * grid.num_points).shape == expected.shape
    np.testing.assert_allclose(grid.sample_block(KEY, 2, 4), expected[8:12], atol=1e-7)


@pytest.mark.parametrize("points, z_dim", [(10, 256), (10, 8), (3, 100)])
def test_grid_refuses_impossible_sizes_with_the_count(points, z_dim):
    count = points**z_dim
    shown = f"{count:,}" if count < 10**12 else f"10^{math.log10(count):.1f}"
    with pytest.raises(ValueError, match=shown.replace("^", r"\^")):
        S.GridSampler(-1.0, 1.0, points, z_dim)


# ---------------------------------------------------------------------------------------------
# Fits.


def test_diagonal_and_full_fits_recover_the_known_gaussian():
    rng = np.random.default_rng(1)
    d, n = 5, 20_000
    true_mean, true_cov = rng.normal(size=d) * 3, _random_cov(rng, d)
    data = rng.multivariate_normal(true_mean, true_cov, n)
    diagonal, full = S.DiagonalGaussianSampler.fit(data), S.FullGaussianSampler.fit(data)
    # Exactly the maximum-likelihood estimates of the data...
    np.testing.assert_allclose(diagonal.mean, data.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(diagonal.std, data.std(0), rtol=1e-4)
    np.testing.assert_allclose(full.mean, data.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full.covariance, np.cov(data.T, bias=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(full.cholesky @ full.cholesky.T, full.covariance, rtol=1e-4, atol=1e-5)
    assert float(full.jitter) == 0
    # ...and within 5 standard errors of the true parameters.
    var = np.diag(true_cov)
    np.testing.assert_array_less(np.abs(full.mean - true_mean), 5 * np.sqrt(var / n))
    se_cov = np.sqrt((np.outer(var, var) + true_cov**2) / n)
    np.testing.assert_array_less(np.abs(full.covariance - true_cov), 5 * se_cov)


def test_full_fit_adds_jitter_to_a_singular_covariance():
    data = np.random.default_rng(2).normal(size=(6, 12))  # rank 5 < 12
    full = S.FullGaussianSampler.fit(data)
    assert float(full.jitter) > 0
    assert np.all(np.isfinite(full.cholesky))
    np.testing.assert_allclose(full.cholesky @ full.cholesky.T, full.covariance, atol=1e-4)


@pytest.mark.parametrize(
    "bad, message", [(np.zeros(5), "2-D"), (np.full((4, 2), np.nan), "NaN"), (np.zeros((1, 3)), "at least 2")]
)
def test_fits_refuse_bad_data(bad, message):
    with pytest.raises(ValueError, match=message):
        S.DiagonalGaussianSampler.fit(bad)


def _log_likelihood(x, weights, means, covs):
    """Mean log-likelihood per point of a Gaussian mixture, in numpy float64."""
    d = x.shape[1]
    log_joint = []
    for w, m, c in zip(weights, means, covs):
        c = np.diag(c) if c.ndim == 1 else c
        diff = x - m
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(c), diff)
        log_joint.append(np.log(w) - 0.5 * (maha + np.linalg.slogdet(c)[1] + d * np.log(2 * np.pi)))
    log_joint = np.stack(log_joint, 1)
    peak = log_joint.max(1)
    return np.mean(peak + np.log(np.exp(log_joint - peak[:, None]).sum(1)))


@pytest.mark.parametrize("covariance, init", [("full", "kmeans++"), ("diag", "random")])
def test_mixture_recovers_three_components(covariance, init):
    rng = np.random.default_rng(3)
    n, weights = 4000, np.array([0.5, 0.3, 0.2])
    means = np.array([[-6.0, 0.0, 1.0], [6.0, 1.0, 0.0], [0.0, 9.0, -2.0]])
    covs = np.stack(
        [np.diag(rng.uniform(0.5, 2.0, 3)) if covariance == "diag" else _random_cov(rng, 3) for _ in range(3)]
    )
    component = rng.choice(3, n, p=weights)
    data = means[component] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[component], rng.normal(size=(n, 3)))
    mixture = S.make_sampler("mixture", z=data, key=KEY, n_components=3, n_iter=40, covariance=covariance, init=init)
    assert isinstance(mixture, S.GaussianMixtureSampler) and mixture.n_components == 3

    order = [int(np.argmin(np.linalg.norm(np.asarray(mixture.means) - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2], "each true component is matched by a different fitted one"
    counts = n * weights
    stds = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    np.testing.assert_array_less(np.abs(np.asarray(mixture.means)[order] - means), 5 * stds / np.sqrt(counts)[:, None])
    np.testing.assert_array_less(
        np.abs(np.asarray(mixture.weights)[order] - weights), 5 * np.sqrt(weights * (1 - weights) / n)
    )

    history = np.asarray(mixture.log_likelihood)
    assert history.shape == (mixture.iterations + 1,) and mixture.iterations <= 40
    assert np.all(np.diff(history) >= -FLOAT32_TOL * np.abs(history[1:])), "EM log-likelihood decreased"
    fitted_covs = np.asarray(mixture.covariances)
    assert fitted_covs.shape == ((3, 3) if covariance == "diag" else (3, 3, 3))
    # The maximum-likelihood fit scores the data at least as well as the true parameters.
    truth = _log_likelihood(data, weights, means, covs)
    assert history[-1] >= truth - FLOAT32_TOL * abs(truth)
    np.testing.assert_allclose(
        history[-1],
        _log_likelihood(data, np.asarray(mixture.weights), np.asarray(mixture.means), fitted_covs),
        rtol=1e-4,
    )


# ---------------------------------------------------------------------------------------------
# Factory and validation.


def test_make_sampler_builds_each_kind_by_name():
    z = np.random.default_rng(4).normal(size=(200, 4))
    built = {
        name: S.make_sampler(name, z=z, key=KEY, **params)
        for name, params in [
            ("grid", dict(lo=-1.0, hi=1.0, points_per_axis=3)),
            ("uniform", dict(bound=2.0)),
            ("isotropic", dict(mu=0.0, sigma=1.0)),
            ("diagonal", {}),
            ("full", {}),
        ]
    }
    assert set(built) | {"mixture"} == set(S.SAMPLERS)  # the mixture: test_mixture_recovers_three_components
    for name, sampler in built.items():
        assert isinstance(sampler, S.SAMPLERS[name]) and sampler.z_dim == 4 and sampler.name == name
        assert sampler.label.startswith(name)


@pytest.mark.parametrize(
    "name, z, params, message",
    [
        ("gaussian", None, {}, "allowed: grid, uniform, isotropic, diagonal, full, mixture"),
        ("uniform", None, dict(bound=1.0, z_dim=3, sigma=2.0), "unknown parameter.*sigma.*allowed: bound, z_dim"),
        ("uniform", None, dict(bound=-1.0, z_dim=3), "bound"),
        ("uniform", None, dict(bound=1.0), "needs z_dim"),
        ("isotropic", None, dict(mu=0.0, sigma=0.0, z_dim=2), "sigma"),
        ("grid", None, dict(lo=1.0, hi=-1.0, points_per_axis=3, z_dim=2), "lo < hi"),
        ("diagonal", None, {}, "needs z"),
        ("mixture", np.zeros((10, 2)), dict(n_components=2, covariance="spherical"), "full, diag"),
        ("mixture", np.zeros((10, 2)), dict(n_components=2, init="kmeans"), "kmeans\\+\\+, random"),
        ("mixture", np.zeros((10, 2)), dict(n_components=11), "n_components"),
    ],
)
def test_make_sampler_refuses_bad_names_and_params(name, z, params, message):
    with pytest.raises(ValueError, match=message):
        S.make_sampler(name, z=z, key=KEY, **params)


# ---------------------------------------------------------------------------------------------
# Closed forms.


def test_normal_interval_probability_is_accurate_deep_in_both_tails():
    lo = np.array([-1.0, 6.0, -9.0, 25.0, -30.0, 0.5, -2.0], np.float32)  # the reference sees the same floats
    hi = np.array([1.0, 7.0, -8.0, 26.0, -29.5, 0.55, np.inf], np.float32)

    def tail(x):
        return 0.5 * math.erfc(float(x) / math.sqrt(2))  # P(X > x), float64 down to ~1e-308

    def reference(a, b):
        if a >= 0:
            return math.log(tail(a) - tail(b))
        if b <= 0:
            return math.log(tail(-b) - tail(-a))
        return math.log(1 - tail(b) - tail(-a))

    got = np.asarray(S.normal_log_prob_inside(0.0, 1.0, jnp.asarray(lo), jnp.asarray(hi)))
    np.testing.assert_allclose(got, [reference(a, b) for a, b in zip(lo, hi)], rtol=1e-5)
    # Beyond float64: P(40 < X < 41) ~ phi(40) / 40, i.e. log P ~ -800 - log(40 sqrt(2 pi)) (relative error 1/40^2).
    far = float(S.normal_log_prob_inside(0.0, 1.0, 40.0, 41.0))
    np.testing.assert_allclose(far, -800 - math.log(40 * math.sqrt(2 * math.pi)), atol=2 / 40**2)


RADIUS_CASES = [("uniform", d, b) for d in (2, 16, 256) for b in (1.0, 3.0)] + [
    (name, d, 1.0 if d == 16 else 3.0)
    for name in ("isotropic_centred", "isotropic_offset", "diagonal", "full", "mixture")
    for d in (2, 16, 256)
]


@pytest.mark.parametrize("name, d, scale", RADIUS_CASES)
def test_radius_moments_match_monte_carlo(name, d, scale):
    rng = np.random.default_rng(d)
    n = 20_000
    sampler, z = _draw_numpy(rng, name, n, d, scale)
    radii = np.linalg.norm(z, axis=1)
    mean, std = (float(v) for v in sampler.radius_moments())
    mc_mean, mc_std = radii.mean(), radii.std()
    se_mean = mc_std / np.sqrt(n)
    se_std = np.std((radii - mc_mean) ** 2) / (2 * mc_std * np.sqrt(n))
    # The delta method errs by O(Var S / (E S)^2) relatively (S = |z|^2; 2/N for a centred Gaussian); chi is exact.
    mean_sq, var_sq = (float(v) for v in sampler.squared_radius_moments())
    squares = radii**2
    assert abs(mean_sq - squares.mean()) <= 5 * squares.std() / np.sqrt(n)
    assert abs(var_sq - squares.var()) <= 5 * np.std((squares - squares.mean()) ** 2) / np.sqrt(n)
    expansion = 0.0 if sampler.radius_method.startswith("exact") else var_sq / mean_sq**2
    assert abs(mean - mc_mean) <= 5 * se_mean + 0.1 * expansion * mc_mean, (mean, mc_mean)
    assert abs(std - mc_std) <= 5 * se_std + 0.5 * expansion * mc_std, (std, mc_std)


def test_tiny_box_probability_is_a_finite_power_of_ten():
    d, bound, k = 220, 12.0, 3.0
    mu = np.random.default_rng(5).uniform(-2, 2, d)
    fwhm = np.ones(d)
    lo, hi = mu - k * fwhm, mu + k * fwhm
    log_prob = float(S.UniformBoxSampler(bound, d).log_prob_inside(jnp.asarray(lo), jnp.asarray(hi)))
    reference = np.sum(np.log(np.minimum(hi, bound) - np.maximum(lo, -bound)) - np.log(2 * bound))
    assert np.isfinite(log_prob) and log_prob / math.log(10) < -100
    np.testing.assert_allclose(log_prob, reference, rtol=1e-5)
