"""Random z-point generators behind one interface, with the closed forms the hit analysis needs.

Every sampler is a pytree (flax.struct.dataclass) that can be passed through `jax.jit`: shape-defining fields
(z_dim, points per axis, covariance kind) are static, scalars and arrays are leaves, so a sweep over the
bound of the uniform box compiles once. Python scalars are validated on construction. Each sampler has a
`name`, `params()` and `label` for reports, and:
  - `sample(key, n) -> (n, z_dim)`, jittable with `n` static;
  - `component_log_prob_inside(lo, hi) -> (z_dim,)`: log P(lo_i <= z_i <= hi_i) of each component's marginal;
  - `log_prob_inside(lo, hi)`: log P(lo <= z <= hi) for the whole box, None where it has no closed form
    (full covariances: estimate it by Monte Carlo);
  - `log_prob_in_box(mu, fwhm, k)`: the same for the data box of ae_jax.numerics.hits (`box_offset` <= k), whose
    edges the grid counts with the enumeration's own predicate;
  - `squared_radius_moments()`: exact E|z|^2 and Var|z|^2;
  - `radius_moments()`: mean and std of |z|, exact for a centred isotropic Gaussian (chi distribution), otherwise
    the second-order delta method on |z|^2 (`radius_method` says which).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax
from jax.scipy.special import log_ndtr, logsumexp

from ae_jax.numerics import stats

MAX_GRID_POINTS = 10**7
JITTERS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # relative to the mean variance; first that factorises wins


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _require_z_dim(z_dim) -> None:
    _require(
        isinstance(z_dim, int) and not isinstance(z_dim, bool) and z_dim > 0,
        f"z_dim must be a positive int, got {z_dim!r}",
    )


def _is_number(x) -> bool:
    """Python scalars are validated on construction; arrays may be tracers (pytree unflattening) and are not."""
    return isinstance(x, (int, float))


def _format_count(count: int) -> str:
    """An exact count, or a power of ten when it is too large to read."""
    return f"{count:,}" if count < 10**12 else f"10^{math.log10(count):.1f}"


# ---------------------------------------------------------------------------------------------
# Closed forms shared by the samplers.


def _log1mexp(x: jax.Array) -> jax.Array:
    """log(1 - exp(x)) for x <= 0, accurate both near 0 and far below (Maechler 2012)."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


@jax.jit
def normal_log_prob_inside(mean, std, lo, hi) -> jax.Array:
    """log P(lo <= x <= hi) for x ~ N(mean, std^2), elementwise; stays finite deep in the tails (log_ndtr).

    In float32 the absolute error is ~1e-7 / (relative width of the interval), e.g. 1e-4 for a width of 1e-3 sigma.
    """
    a, b = (lo - mean) / std, (hi - mean) / std
    upper = a > 0  # both ends above the mean: mirror into the lower tail, where log_ndtr keeps precision
    a, b = jnp.where(upper, -b, a), jnp.where(upper, -a, b)
    log_b = log_ndtr(b)
    inside = log_b + _log1mexp(jnp.minimum(log_ndtr(a) - log_b, 0.0))
    return jnp.where(log_b == -jnp.inf, -jnp.inf, inside)


@jax.jit
def uniform_log_prob_inside(low, high, lo, hi) -> jax.Array:
    """log P(lo <= x <= hi) for x ~ U[low, high], elementwise: log(overlap length / (high - low))."""
    overlap = jnp.maximum(jnp.minimum(hi, high) - jnp.maximum(lo, low), 0.0)
    return jnp.log(overlap) - jnp.log(high - low)


@jax.jit
def gaussian_squared_radius_moments(mean, cov) -> tuple[jax.Array, jax.Array]:
    """E|z|^2 and Var|z|^2 for z ~ N(mean, cov); `cov` is (..., D, D), or the variances (..., D) if diagonal.

    E|z|^2 = |mean|^2 + tr(cov), Var|z|^2 = 2 tr(cov^2) + 4 mean^T cov mean.
    """
    if cov.ndim == mean.ndim:
        return jnp.sum(mean**2 + cov, -1), jnp.sum(2 * cov**2 + 4 * mean**2 * cov, -1)
    return (
        jnp.sum(mean**2, -1) + jnp.trace(cov, axis1=-2, axis2=-1),
        2 * jnp.sum(cov**2, (-2, -1)) + 4 * jnp.einsum("...i,...ij,...j->...", mean, cov, mean),
    )


@jax.jit
def delta_radius_moments(mean_sq, var_sq) -> tuple[jax.Array, jax.Array]:
    """Mean and std of |z| = sqrt(S) from E[S] = m and Var[S] = v by the second-order delta method.

    E sqrt(S) ~ sqrt(m) - v / (8 m^1.5); the std then follows from E|z|^2 = m as sqrt(v/(4m) - v^2/(64 m^3)).
    The relative error is O(v / m^2) = O(1/N) for N independent components; measured for the uniform box:
    std -10% / -1.4% / <0.6% and mean +1.4% / <0.1% / <0.1% at N = 2 / 16 / 256.
    """
    mean = jnp.sqrt(mean_sq) - var_sq / (8 * mean_sq**1.5)
    var = var_sq / (4 * mean_sq) * (1 - var_sq / (16 * mean_sq**2))
    return mean, jnp.sqrt(jnp.maximum(var, 0.0))


def chi_radius_moments(z_dim: int) -> tuple[float, float]:
    """Exact mean and std of |z| for z ~ N(0, I_N): mean = sqrt(2) Gamma((N+1)/2) / Gamma(N/2) (scale by sigma).

    Evaluated in float64 on the host: the std is a small difference of large numbers at N ~ 256.
    """
    mean = math.sqrt(2.0) * math.exp(math.lgamma((z_dim + 1) / 2) - math.lgamma(z_dim / 2))
    return mean, math.sqrt(max(z_dim - mean**2, 0.0))


# ---------------------------------------------------------------------------------------------
# The interface.


class Sampler:
    """Interface of every z-point generator (see the module docstring)."""

    name: ClassVar[str]
    independent: ClassVar[bool] = True  # independent components: the box probability is a product
    radius_method: ClassVar[str] = "delta method"
    num_points: ClassVar[int | None] = None  # finite generators (the grid): how many distinct points
    unlabelled: ClassVar[tuple[str, ...]] = ("z_dim",)  # scalar params() left out of `label`

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        raise NotImplementedError

    def sample_block(self, key: jax.Array, index, size: int) -> jax.Array:
        """Block `index` of a long stream of samples (finite generators enumerate their points instead)."""
        return self.sample(jax.random.fold_in(key, index), size)

    def params(self) -> dict:
        raise NotImplementedError

    def component_log_prob_inside(self, lo: jax.Array, hi: jax.Array) -> jax.Array:
        raise NotImplementedError

    def squared_radius_moments(self) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def log_prob_inside(self, lo: jax.Array, hi: jax.Array) -> jax.Array | None:
        """log P(lo <= z <= hi) for the whole box: the sum over components when they are independent."""
        return jnp.sum(self.component_log_prob_inside(lo, hi), -1) if self.independent else None

    def log_prob_in_box(self, mu: jax.Array, fwhm: jax.Array, k) -> jax.Array | None:
        """log P(box_offset(z, mu, fwhm) <= k in every component): the data box of ae_jax.numerics.hits."""
        return self.log_prob_inside(mu - k * fwhm, mu + k * fwhm)

    def radius_moments(self) -> tuple[jax.Array, jax.Array]:
        return delta_radius_moments(*self.squared_radius_moments())

    @property
    def label(self) -> str:
        """Short name with the scalar parameters, for tables and legends."""
        scalars = (
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in self.params().items()
            if isinstance(v, (int, float, str)) and k not in self.unlabelled
        )
        return f"{self.name}({', '.join(scalars)})"


def box_offset(z, mu, fwhm) -> jax.Array:
    """|z - mu| / fwhm per component: a value lies in the box of k when this is <= k. The one predicate of the
    data box, so counted (grid) and enumerated hits agree for values exactly on an edge."""
    return jnp.abs(z - mu) / fwhm


@functools.partial(jax.jit, static_argnames=("z_dim", "count"))
def _grid_points(axis, start, z_dim: int, count: int) -> jax.Array:
    """Points start, ..., start + count - 1 of the grid axis^z_dim in row-major order."""
    size = axis.shape[0]
    strides = jnp.array([size**i for i in reversed(range(z_dim))], jnp.int32)
    index = start + jnp.arange(count, dtype=jnp.int32)
    return axis[(index[:, None] // strides) % size]


@struct.dataclass
class GridSampler(Sampler):
    """The regular grid with `points_per_axis` values per axis over [lo, hi]^z_dim, in row-major order."""

    lo: float
    hi: float
    points_per_axis: int = struct.field(pytree_node=False)
    z_dim: int = struct.field(pytree_node=False)
    max_points: int = struct.field(pytree_node=False, default=MAX_GRID_POINTS)
    name = "grid"

    def __post_init__(self):
        _require_z_dim(self.z_dim)
        if _is_number(self.lo) and _is_number(self.hi):
            _require(self.lo < self.hi, f"grid needs lo < hi, got lo={self.lo}, hi={self.hi}")
        _require(
            isinstance(self.points_per_axis, int) and self.points_per_axis >= 2,
            f"points_per_axis must be an int >= 2, got {self.points_per_axis!r}",
        )
        _require(self.max_points < 2**31, f"max_points must be < 2^31, got {self.max_points}")
        _require(
            self.num_points <= self.max_points,
            f"a grid of {self.points_per_axis} points per axis in z_dim={self.z_dim} has "
            f"{self.points_per_axis}^{self.z_dim} = {_format_count(self.num_points)} points, "
            f"more than the limit {_format_count(self.max_points)}",
        )

    @property
    def num_points(self) -> int:
        return self.points_per_axis**self.z_dim

    @property
    def axis(self) -> jax.Array:
        return jnp.linspace(self.lo, self.hi, self.points_per_axis)

    def points(self, start, count: int) -> jax.Array:
        """Grid points start, ..., start + count - 1 in row-major order (the last axis varies fastest)."""
        return _grid_points(self.axis, start, self.z_dim, count)

    def sample(self, key: jax.Array, n: int | None = None) -> jax.Array:
        """The first n grid points (all of them if n is None or larger); `key` is unused."""
        return self.points(0, self.num_points if n is None else min(n, self.num_points))

    def sample_block(self, key, index, size):
        """Block `index` of the enumeration of all grid points."""
        return self.points(index * size, size)

    def params(self) -> dict:
        return dict(
            lo=float(self.lo),
            hi=float(self.hi),
            points_per_axis=self.points_per_axis,
            z_dim=self.z_dim,
            num_points=self.num_points,
        )

    def component_log_prob_inside(self, lo, hi):
        """Share of a uniformly chosen grid point's axis values inside [lo_i, hi_i]."""
        axis = self.axis
        inside = jnp.sum((axis >= lo[..., None]) & (axis <= hi[..., None]), -1)
        return jnp.log(inside) - math.log(self.points_per_axis)

    def log_prob_in_box(self, mu, fwhm, k):
        """Share of grid points in the data box, counted per axis with `box_offset` (as hits enumerate them)."""
        inside = jnp.sum(box_offset(self.axis, mu[..., None], fwhm[..., None]) <= k, -1)
        return jnp.sum(jnp.log(inside) - math.log(self.points_per_axis), -1)

    def squared_radius_moments(self):
        axis_sq = self.axis**2
        return self.z_dim * jnp.mean(axis_sq), self.z_dim * jnp.var(axis_sq)


@struct.dataclass
class UniformBoxSampler(Sampler):
    """Uniform in [-bound, bound]^z_dim."""

    bound: float
    z_dim: int = struct.field(pytree_node=False)
    name = "uniform"

    def __post_init__(self):
        _require_z_dim(self.z_dim)
        if _is_number(self.bound):
            _require(math.isfinite(self.bound) and self.bound > 0, f"bound must be finite and > 0, got {self.bound}")

    def sample(self, key, n):
        return jax.random.uniform(key, (n, self.z_dim), minval=-self.bound, maxval=self.bound)

    def params(self):
        return dict(bound=float(self.bound), z_dim=self.z_dim)

    def component_log_prob_inside(self, lo, hi):
        return uniform_log_prob_inside(-self.bound, self.bound, lo, hi)

    def squared_radius_moments(self):
        """Per component E x^2 = b^2/3 and Var x^2 = b^4/5 - b^4/9, summed over the z_dim components."""
        b2 = jnp.square(self.bound)
        return self.z_dim * b2 / 3, self.z_dim * b2**2 * (1 / 5 - 1 / 9)


@struct.dataclass
class IsotropicGaussianSampler(Sampler):
    """N(mu, sigma^2) independently per component."""

    mu: float
    sigma: float
    z_dim: int = struct.field(pytree_node=False)
    name = "isotropic"

    def __post_init__(self):
        _require_z_dim(self.z_dim)
        if _is_number(self.mu) and _is_number(self.sigma):
            _require(math.isfinite(self.mu), f"mu must be finite, got {self.mu}")
            _require(math.isfinite(self.sigma) and self.sigma > 0, f"sigma must be finite and > 0, got {self.sigma}")

    def sample(self, key, n):
        return self.mu + self.sigma * jax.random.normal(key, (n, self.z_dim))

    def params(self):
        return dict(mu=float(self.mu), sigma=float(self.sigma), z_dim=self.z_dim)

    def component_log_prob_inside(self, lo, hi):
        return normal_log_prob_inside(self.mu, self.sigma, lo, hi)

    def squared_radius_moments(self):
        ones = jnp.ones(self.z_dim)
        return gaussian_squared_radius_moments(self.mu * ones, jnp.square(self.sigma) * ones)

    @property
    def radius_method(self) -> str:
        return "exact (chi)" if float(self.mu) == 0 else "delta method (noncentral chi)"

    def radius_moments(self):
        """Exact chi moments when mu == 0, the delta method otherwise."""
        chi_mean, chi_std = chi_radius_moments(self.z_dim)
        delta_mean, delta_std = super().radius_moments()
        centred = jnp.asarray(self.mu) == 0
        return (
            jnp.where(centred, self.sigma * chi_mean, delta_mean),
            jnp.where(centred, self.sigma * chi_std, delta_std),
        )


@struct.dataclass
class DiagonalGaussianSampler(Sampler):
    """N(mean_i, std_i^2) independently per component, usually fitted to the data's z-points."""

    mean: jax.Array
    std: jax.Array
    name = "diagonal"

    @classmethod
    def fit(cls, z) -> DiagonalGaussianSampler:
        """Per-component mean and (maximum-likelihood) std of z-points (n, D)."""
        z = stats.as_points(z, min_points=2)
        return cls(jnp.mean(z, 0), jnp.std(z, 0))

    @property
    def z_dim(self) -> int:
        return self.mean.shape[-1]

    def sample(self, key, n):
        return self.mean + self.std * jax.random.normal(key, (n, self.z_dim))

    def params(self):
        return dict(
            z_dim=self.z_dim,
            std_min=float(self.std.min()),
            std_max=float(self.std.max()),
            mean_abs_max=float(jnp.abs(self.mean).max()),
        )

    def component_log_prob_inside(self, lo, hi):
        return normal_log_prob_inside(self.mean, self.std, lo, hi)

    def squared_radius_moments(self):
        return gaussian_squared_radius_moments(self.mean, self.std**2)


def _cholesky_with_jitter(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cholesky factor of cov + jitter I for the first of JITTERS (times the mean variance) that factorises."""
    d = cov.shape[-1]
    jitters = jnp.array(JITTERS) * jnp.trace(cov) / d
    factors = jax.vmap(lambda j: jnp.linalg.cholesky(cov + j * jnp.eye(d)))(jitters)
    first = jnp.argmax(jnp.all(jnp.isfinite(factors), axis=(1, 2)))
    return factors[first], jitters[first]


@jax.jit
def _fit_full_gaussian(z):
    mean, cov = stats.covariance(z, ddof=0)
    cholesky, jitter = _cholesky_with_jitter(cov)
    return mean, cov + jitter * jnp.eye(z.shape[1]), cholesky, jitter


@struct.dataclass
class FullGaussianSampler(Sampler):
    """N(mean, covariance) with a full covariance; `cholesky` factors `covariance` (which includes `jitter`)."""

    mean: jax.Array
    covariance: jax.Array
    cholesky: jax.Array
    jitter: jax.Array
    name = "full"
    independent = False

    @classmethod
    def fit(cls, z) -> FullGaussianSampler:
        """Maximum-likelihood mean and covariance of z-points (n, D); jitter is added if it does not factorise."""
        sampler = cls(*_fit_full_gaussian(stats.as_points(z, min_points=2)))
        _require(
            bool(jnp.all(jnp.isfinite(sampler.cholesky))),
            f"the covariance of z does not factorise even with jitter {JITTERS[-1]} x mean variance",
        )
        return sampler

    @property
    def z_dim(self) -> int:
        return self.mean.shape[-1]

    def sample(self, key, n):
        return self.mean + jax.random.normal(key, (n, self.z_dim)) @ self.cholesky.T

    def params(self):
        return dict(z_dim=self.z_dim, jitter=float(self.jitter), total_variance=float(jnp.trace(self.covariance)))

    def component_log_prob_inside(self, lo, hi):
        return normal_log_prob_inside(self.mean, jnp.sqrt(jnp.diagonal(self.covariance)), lo, hi)

    def squared_radius_moments(self):
        return gaussian_squared_radius_moments(self.mean, self.covariance)


# ---------------------------------------------------------------------------------------------
# Gaussian mixture fitted by EM (ex-post density estimation, Ghosh et al. 2020).


def _squared_distances_to(x: jax.Array, centres: jax.Array) -> jax.Array:
    """|x_n - c_k|^2, shape (n, K), one centre at a time so memory stays at (n, D)."""
    return lax.map(lambda c: jnp.sum((x - c) ** 2, -1), centres).T


def _init_centres(key, x, n_components: int, init: str) -> jax.Array:
    """Initial centres: distinct random points, or k-means++ seeding (each next centre drawn prop. to D^2).

    Not the greedy k-means++ of scikit-learn (the best of 2 + log K draws per centre): on clusters where k-means
    prefers splitting a wide cluster to separating a close pair, it reached the mixture's optimum less often.
    """
    n = x.shape[0]
    if init == "random":
        return x[jax.random.choice(key, n, (n_components,), replace=False)]
    keys = jax.random.split(key, n_components)
    first = x[jax.random.randint(keys[0], (), 0, n)]
    centres = jnp.zeros((n_components, x.shape[1]), x.dtype).at[0].set(first)

    def add_centre(i, carry):
        centres, d2 = carry
        centre = x[jax.random.categorical(keys[i], jnp.log(d2))]
        return centres.at[i].set(centre), jnp.minimum(d2, jnp.sum((x - centre) ** 2, -1))

    centres, _ = lax.fori_loop(1, n_components, add_centre, (centres, jnp.sum((x - first) ** 2, -1)))
    return centres


def _lloyd(x, centres, steps: int) -> jax.Array:
    """`steps` k-means (Lloyd) iterations from `centres`; a centre left without points stays where it was."""

    def step(centres, _):
        assign = jax.nn.one_hot(jnp.argmin(_squared_distances_to(x, centres), 1), centres.shape[0], dtype=x.dtype)
        counts = jnp.sum(assign, 0)[:, None]
        return jnp.where(counts > 0, assign.T @ x / jnp.maximum(counts, 1), centres), None

    return lax.scan(step, centres, None, length=steps)[0]


def _log_gaussian_densities(x, means, covariances, diagonal: bool) -> jax.Array:
    """log N(x_n | means_k, covariances_k), shape (n, K); covariances are variances (K, D) when diagonal."""

    def one(mean, cov):
        centred = x - mean
        if diagonal:
            return jnp.sum(centred**2 / cov, -1), jnp.sum(jnp.log(cov))
        chol = jnp.linalg.cholesky(cov)
        whitened = jax.scipy.linalg.solve_triangular(chol, centred.T, lower=True)
        return jnp.sum(whitened**2, 0), 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))

    mahalanobis, log_det = lax.map(lambda a: one(*a), (means, covariances))
    return -0.5 * (mahalanobis.T + log_det + x.shape[1] * math.log(2 * math.pi))


def _e_step(x, params, diagonal: bool):
    """Mean log-likelihood per point and responsibilities (n, K), normalised in log space."""
    weights, means, covariances = params
    log_joint = jnp.log(weights) + _log_gaussian_densities(x, means, covariances, diagonal)
    log_norm = logsumexp(log_joint, axis=1, keepdims=True)
    return jnp.mean(log_norm), jnp.exp(log_joint - log_norm)


def _m_step(x, resp, diagonal: bool, regularization):
    """Weights, means and (regularised) covariances maximising the expected complete log-likelihood."""
    counts = jnp.sum(resp, 0) + 10 * jnp.finfo(x.dtype).eps
    means = resp.T @ x / counts[:, None]

    def covariance(r, mean, count):
        centred = x - mean
        if diagonal:
            return r @ centred**2 / count + regularization
        return (centred * r[:, None]).T @ centred / count + regularization * jnp.eye(x.shape[1])

    covariances = lax.map(lambda a: covariance(*a), (resp.T, means, counts))
    return counts / jnp.sum(counts), means, covariances


def _em(x, params, diagonal: bool, reg, tol, n_iter: int):
    """EM from `params` until the gain in mean log-likelihood per point is below tol x |log-likelihood| (a decrease,
    which only rounding or the regularization cause, also stops it) or after n_iter iterations.

    Returns the parameters, the log-likelihood history (n_iter + 1,) after 0, 1, ... iterations (NaN past the
    last), the number of iterations and whether the tolerance stopped it; the history's last entry scores the
    returned parameters.
    """
    history = jnp.full(n_iter + 1, jnp.nan, x.dtype)

    def step(state):
        i, params, history, _ = state
        log_likelihood, resp = _e_step(x, params, diagonal)
        history = history.at[i].set(log_likelihood)
        converged = (i > 0) & (log_likelihood - history[i - 1] < tol * jnp.abs(log_likelihood))
        last = converged | (i == n_iter)
        params = jax.tree.map(lambda a, b: jnp.where(last, a, b), params, _m_step(x, resp, diagonal, reg))
        return i + 1, params, history, converged

    state = (jnp.int32(0), params, history, jnp.bool_(False))
    i, params, history, converged = lax.while_loop(lambda s: ~s[3] & (s[0] <= n_iter), step, state)
    return params, history, i - 1, converged


def _fit_once(key, x, reg, tol, n_components: int, n_iter: int, diagonal: bool, init: str, kmeans_steps: int):
    """One restart: seeded centres, `kmeans_steps` Lloyd steps, a hard assignment to them, then EM (`_em`)."""
    centres = _lloyd(x, _init_centres(key, x, n_components, init), kmeans_steps)
    nearest = jnp.argmin(_squared_distances_to(x, centres), 1)
    params = _m_step(x, jax.nn.one_hot(nearest, n_components, dtype=x.dtype), diagonal, reg)
    return _em(x, params, diagonal, reg, tol, n_iter)


@functools.partial(jax.jit, static_argnames=("n_components", "n_iter", "diagonal", "init", "n_init", "kmeans_steps"))
def _fit_mixture(
    key,
    z,
    regularization,
    tol,
    n_components: int,
    n_iter: int,
    diagonal: bool,
    init: str,
    n_init: int,
    kmeans_steps: int,
):
    """`n_init` restarts of `_fit_once` on the centred data, vmapped; keeps the one with the best final
    log-likelihood. Returns its weights, means, covariances, history, iterations and convergence, and every
    restart's final log-likelihood."""
    shift = jnp.mean(z, 0)
    x = z - shift
    reg = regularization * jnp.mean(jnp.var(x, 0))
    params, history, iterations, converged = jax.vmap(
        lambda k: _fit_once(k, x, reg, tol, n_components, n_iter, diagonal, init, kmeans_steps)
    )(jax.random.split(key, n_init))
    finals = jnp.take_along_axis(history, iterations[:, None], 1)[:, 0]
    best = jnp.argmax(jnp.where(jnp.isnan(finals), -jnp.inf, finals))
    weights, means, covariances = (p[best] for p in params)
    return weights, means + shift, covariances, history[best], iterations[best], converged[best], finals


@struct.dataclass
class GaussianMixtureSampler(Sampler):
    """A mixture of Gaussians; `covariances` is (K, D, D), or the variances (K, D) when covariance="diag".

    From its fit (`fit`): `log_likelihood` holds the chosen restart's mean log-likelihood per point after each EM
    iteration (index 0: initialisation, so `iterations` is its length less one), `converged` whether the tolerance
    stopped it within n_iter, `restart_log_likelihoods` every restart's final value; a mixture built from known
    parameters keeps the defaults.
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    log_likelihood: jax.Array
    covariance: str = struct.field(pytree_node=False)
    converged: jax.Array = True
    restart_log_likelihoods: jax.Array = ()
    name = "mixture"
    independent = False
    unlabelled = ("z_dim", "iterations", "converged")
    COVARIANCES: ClassVar[tuple[str, ...]] = ("full", "diag")
    INITS: ClassVar[tuple[str, ...]] = ("kmeans++", "random")

    def __post_init__(self):
        _require(
            self.covariance in self.COVARIANCES,
            f"covariance must be one of {', '.join(self.COVARIANCES)}, got {self.covariance!r}",
        )

    @classmethod
    def fit(
        cls,
        key,
        z,
        n_components: int,
        n_iter: int = 300,
        covariance: str = "full",
        init: str = "kmeans++",
        regularization: float = 1e-4,
        n_init: int = 4,
        kmeans_steps: int = 10,
        tol: float = 1e-6,
    ) -> GaussianMixtureSampler:
        """EM fit of `n_components` Gaussians to z-points (n, D), the best of `n_init` restarts.

        Each restart seeds centres (`init`), moves them by `kmeans_steps` k-means steps, then runs EM until the gain
        in mean log-likelihood per point is below `tol` times its magnitude (relative, so one tol fits any z_dim) or
        for `n_iter` iterations. `regularization` (times the data's mean variance) is added to every covariance's
        diagonal; float32 needs more than float64's usual 1e-6 to keep near-singular covariances factorisable.
        """
        _require(
            covariance in cls.COVARIANCES, f"covariance must be one of {', '.join(cls.COVARIANCES)}, got {covariance!r}"
        )
        _require(init in cls.INITS, f"init must be one of {', '.join(cls.INITS)}, got {init!r}")
        for name, value, least in (("n_iter", n_iter, 1), ("n_init", n_init, 1), ("kmeans_steps", kmeans_steps, 0)):
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value >= least,
                f"{name} must be an int >= {least}, got {value!r}",
            )
        _require(regularization >= 0, f"regularization must be >= 0, got {regularization}")
        _require(tol >= 0, f"tol must be >= 0, got {tol}")
        z = stats.as_points(z, min_points=2)
        _require(
            isinstance(n_components, int) and 1 <= n_components <= z.shape[0],
            f"n_components must be an int in [1, {z.shape[0]}] (the number of points), got {n_components!r}",
        )
        if key is None:
            raise ValueError("the mixture needs a PRNG key for its initialisation")
        *params, history, iterations, converged, finals = _fit_mixture(
            key,
            z,
            jnp.float32(regularization),
            jnp.float32(tol),
            n_components,
            n_iter,
            covariance == "diag",
            init,
            n_init,
            kmeans_steps,
        )
        history = history[: int(iterations) + 1]
        _require(
            bool(jnp.all(jnp.isfinite(history))),
            f"EM diverged (non-finite log-likelihood); raise regularization above {regularization}",
        )
        return cls(*params, history, covariance, converged, finals)

    @property
    def z_dim(self) -> int:
        return self.means.shape[-1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def sample(self, key, n):
        key_component, key_noise = jax.random.split(key)
        component = jax.random.categorical(key_component, jnp.log(self.weights), shape=(n,))
        noise = jax.random.normal(key_noise, (n, self.z_dim))
        if self.covariance == "diag":
            return self.means[component] + jnp.sqrt(self.covariances)[component] * noise
        factors = jnp.linalg.cholesky(self.covariances)

        def add_component(k, z):  # one component at a time: no (n, D, D) gather
            return jnp.where((component == k)[:, None], self.means[k] + noise @ factors[k].T, z)

        return lax.fori_loop(0, self.n_components, add_component, jnp.zeros_like(noise))

    @property
    def iterations(self) -> int:
        """EM iterations of the chosen restart."""
        return self.log_likelihood.shape[0] - 1

    def params(self):
        return dict(
            n_components=self.n_components,
            covariance=self.covariance,
            z_dim=self.z_dim,
            log_likelihood=float(self.log_likelihood[-1]),
            iterations=self.iterations,
            converged=bool(self.converged),
            restart_log_likelihoods=[float(v) for v in self.restart_log_likelihoods],
            weights=[round(float(w), 4) for w in self.weights],
        )

    def _variances(self) -> jax.Array:
        if self.covariance == "diag":
            return self.covariances
        return jnp.diagonal(self.covariances, axis1=-2, axis2=-1)

    def _component_log_probs(self, lo, hi) -> jax.Array:
        """log P(lo_i <= z_i <= hi_i | component k), shape (K, D)."""
        return normal_log_prob_inside(self.means, jnp.sqrt(self._variances()), lo, hi)

    def component_log_prob_inside(self, lo, hi):
        return logsumexp(jnp.log(self.weights)[:, None] + self._component_log_probs(lo, hi), axis=0)

    def log_prob_inside(self, lo, hi):
        """Closed form only for diagonal components: logsumexp_k(log w_k + sum_i log P_ki)."""
        if self.covariance != "diag":
            return None
        return logsumexp(jnp.log(self.weights) + jnp.sum(self._component_log_probs(lo, hi), -1))

    def squared_radius_moments(self):
        """Mixture of the components' moments: Var = sum_k w_k (v_k + (m_k - m)^2)."""
        means_sq, vars_sq = gaussian_squared_radius_moments(self.means, self.covariances)
        mean_sq = jnp.sum(self.weights * means_sq)
        return mean_sq, jnp.sum(self.weights * (vars_sq + (means_sq - mean_sq) ** 2))


# ---------------------------------------------------------------------------------------------
# Construction by name.

SAMPLERS: dict[str, type] = {
    "grid": GridSampler,
    "uniform": UniformBoxSampler,
    "isotropic": IsotropicGaussianSampler,
    "diagonal": DiagonalGaussianSampler,
    "full": FullGaussianSampler,
    "mixture": GaussianMixtureSampler,
}


def check_params(name: str, params) -> Callable:
    """The constructor (or `fit`) of sampler `name`, after refusing an unknown name or parameter."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    build = getattr(SAMPLERS[name], "fit", SAMPLERS[name])
    allowed = [p for p in inspect.signature(build).parameters if p not in ("z", "key")]
    unknown = sorted(set(params) - set(allowed))
    _require(
        not unknown, f"unknown parameter(s) {', '.join(unknown)} for sampler {name!r}; allowed: {', '.join(allowed)}"
    )
    return build


def make_sampler(name: str, z=None, key=None, **params) -> Sampler:
    """Build the sampler `name` from `params`; fitted ones (diagonal, full, mixture) need the data's z-points.

    z_dim defaults to z's width where a sampler takes it. Unknown names and parameters raise ValueError.
    """
    build = check_params(name, params)
    signature = inspect.signature(build).parameters
    given = {"z": z, "key": key}
    if "z_dim" in signature and "z_dim" not in params and z is not None:
        params["z_dim"] = int(jnp.shape(z)[-1])
    params.update({k: v for k, v in given.items() if k in signature})
    missing = [p for p, spec in signature.items() if spec.default is spec.empty and params.get(p) is None]
    _require(not missing, f"sampler {name!r} needs {', '.join(missing)}")
    return build(**params)
