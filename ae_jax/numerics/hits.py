"""Where do generated z-points land relative to the data? Box hits with their binomial intervals, manifold
precision/recall and density/coverage, radius moments.

The data's region is the box mu +- k * fwhm per component (mu, fwhm: the per-component centre and
FWHM, the full width at half maximum, of the data's z-point histograms: what the posts call the
"half-width"). A point's `box_k` is the smallest k whose box contains it, so
hit fractions for many k come from one pass. Analytic box probabilities are products over components, summed
in log space and reported as log10 so that 0.25**220 is -132.5 rather than 0. The manifold region follows
Kynkaanniemi et al. 2019: the union of balls around each real point with radius its k-th neighbour distance
(`stats.knn_distances`); density and coverage (Naeem et al. 2020) count the same balls.

Public functions validate on the host and call jitted cores; pairwise distances are computed in blocks of
queries against all reference points, so memory is block_size x N, never N x N.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import ndtri
from tqdm import tqdm

from ae_jax.numerics import stats
from ae_jax.numerics.samplers import Sampler, UniformBoxSampler, box_offset
from ae_jax.numerics.stats import as_points, is_concrete

LOG10 = math.log(10.0)


def _check_region(mu, fwhm, z_dim: int) -> tuple[jax.Array, jax.Array]:
    """mu and fwhm as float32 (z_dim,) arrays; fwhm must be finite and > 0."""
    mu, fwhm = jnp.asarray(mu, jnp.float32), jnp.asarray(fwhm, jnp.float32)
    for name, value in (("mu", mu), ("fwhm", fwhm)):
        if value.shape != (z_dim,):
            raise ValueError(f"{name} must have shape ({z_dim},) to match the points, got {value.shape}")
    if is_concrete(fwhm) and not bool(jnp.all(jnp.isfinite(mu)) & jnp.all(jnp.isfinite(fwhm) & (fwhm > 0))):
        raise ValueError("mu must be finite and fwhm finite and > 0 in every component")
    return mu, fwhm


def _check_ks(ks) -> jax.Array:
    ks = jnp.atleast_1d(jnp.asarray(ks, jnp.float32))
    if ks.ndim != 1 or is_concrete(ks) and not bool(jnp.all(ks >= 0)):
        raise ValueError(f"k must be a scalar or 1-D array of values >= 0, got {ks}")
    return ks


@jax.jit
def _box_k(points, mu, fwhm):
    return jnp.max(box_offset(points, mu, fwhm), axis=-1)


def box_k(points, mu, fwhm) -> jax.Array:
    """Smallest k whose box contains each point: max_i |z_i - mu_i| / fwhm_i, shape (n,)."""
    points = as_points(points, "points")
    return _box_k(points, *_check_region(mu, fwhm, points.shape[1]))


def box_hits(points, mu, fwhm, k: float) -> jax.Array:
    """Whether each point (n, D) lies inside the box mu +- k*fwhm in every component, bool (n,)."""
    return box_k(points, mu, fwhm) <= k


def _box_hit_indicators(points, mu, fwhm, ks):
    """1 where a point (row) lies in the box of k (column), int32 (n, len(ks))."""
    return (_box_k(points, mu, fwhm)[:, None] <= ks).astype(jnp.int32)


@jax.jit
def _hit_fraction(points, mu, fwhm, ks):
    return jnp.mean(_box_hit_indicators(points, mu, fwhm, ks), axis=0)


def hit_fraction(points, mu, fwhm, ks) -> jax.Array:
    """Share of points inside the box for each k in `ks` (Monte Carlo), shape (len(ks),)."""
    points = as_points(points, "points")
    return _hit_fraction(points, *_check_region(mu, fwhm, points.shape[1]), _check_ks(ks))


@jax.jit
def _log10_box_probability(sampler, mu, fwhm, ks):
    log_probs = jax.vmap(lambda k: sampler.log_prob_in_box(mu, fwhm, k))(ks)
    return None if log_probs is None else log_probs / LOG10  # None: no closed form


def log10_hit_probability(sampler: Sampler, mu, fwhm, k):
    """Analytic log10 P(a generated point lies in the box) for a scalar k or each of an array of k.

    -inf where some component cannot reach the box; None where the sampler has no closed form (full covariance).
    """
    ks = _check_ks(k)
    mu, fwhm = _check_region(mu, fwhm, sampler.z_dim)
    out = _log10_box_probability(sampler, mu, fwhm, ks)
    if out is None:
        return None
    return out if jnp.ndim(k) else out[0]


@functools.partial(jax.jit, static_argnames=("per_point", "num_points", "block_size"))
def _stream_sum(sampler, key, per_point, num_points: int, block_size: int, *args):
    """Sum over the first num_points of the sampler's stream of per_point(points, *args) (B, m), block by block."""

    def add_block(total, index):
        values = per_point(sampler.sample_block(key, index, block_size), *args)
        valid = index * block_size + jnp.arange(block_size) < num_points
        return total + jnp.sum(jnp.where(valid[:, None], values, 0), 0), None

    shape = jax.eval_shape(lambda: per_point(sampler.sample_block(key, 0, block_size), *args))
    total, _ = lax.scan(add_block, jnp.zeros(shape.shape[1:], shape.dtype), jnp.arange(-(-num_points // block_size)))
    return total


def _stream_length(sampler: Sampler, num_samples: int, block_size: int) -> tuple[int, int]:
    """Points to draw and block size: num_samples for continuous samplers, every point of finite ones."""
    if num_samples < 1 or block_size < 1:
        raise ValueError(f"num_samples and block_size must be >= 1, got {num_samples}, {block_size}")
    num_points = num_samples if sampler.num_points is None else sampler.num_points
    return num_points, min(block_size, num_points)


def hit_table(
    samplers: Sequence[Sampler],
    mu,
    fwhm,
    ks,
    key: jax.Array,
    num_samples: int = 100_000,
    block_size: int = 10_000,
) -> list[dict]:
    """One row per (sampler, k): analytic log10 hit probability (None: no closed form) and Monte Carlo hits with
    the 95% Wilson interval of their share (`wilson_interval`).

    Continuous samplers draw num_samples points; finite ones (the grid) are enumerated completely.
    """
    ks = _check_ks(ks)
    rows = []
    for i, sampler in enumerate(tqdm(samplers, desc="hit table", leave=False)):
        region = _check_region(mu, fwhm, sampler.z_dim)
        n, block = _stream_length(sampler, num_samples, block_size)
        counts = _stream_sum(sampler, jax.random.fold_in(key, i), _box_hit_indicators, n, block, *region, ks)
        rows += _hit_rows(sampler, region, ks, counts, n)
    return rows


@jax.jit
def _scaled_box_hit_indicators(points, mu, fwhm, ks, scales):
    """1 where a point times each scale lies in the box of each k, int32 (n, len(scales) * len(ks))."""
    per_scale = jax.vmap(lambda s: _box_hit_indicators(points * s, mu, fwhm, ks), out_axes=1)(scales)
    return per_scale.reshape(points.shape[0], -1)


def uniform_hit_table(
    bounds: Sequence[float], mu, fwhm, ks, key: jax.Array, num_samples: int = 100_000, block_size: int = 10_000
) -> list[dict]:
    """`hit_table`'s rows of uniform boxes [-b, b]^D for each b of `bounds`, from one stream of points in [-1, 1]^D
    times each b (common random numbers): each share is as binomial as from a stream of its own, and the bounds
    cost one stream's draws. The stream is the one hit_table and radius_table draw for a first sampler
    UniformBoxSampler(bound=1)."""
    mu, fwhm = _check_region(mu, fwhm, jnp.shape(mu)[0])
    ks = _check_ks(ks)
    unit = UniformBoxSampler(bound=1.0, z_dim=mu.shape[0])
    n, block = _stream_length(unit, num_samples, block_size)
    scales = jnp.asarray(bounds, jnp.float32)
    args = (mu, fwhm, ks, scales)
    counts = _stream_sum(unit, jax.random.fold_in(key, 0), _scaled_box_hit_indicators, n, block, *args)
    rows = []
    for b, bound_counts in zip(bounds, counts.reshape(len(bounds), -1)):
        rows += _hit_rows(UniformBoxSampler(bound=float(b), z_dim=unit.z_dim), (mu, fwhm), ks, bound_counts, n)
    return rows


def _hit_rows(sampler: Sampler, region, ks, counts, n: int) -> list[dict]:
    """`hit_table`'s rows of one sampler from its hit counts (one per k) among n points."""
    analytic = _log10_box_probability(sampler, *region, ks)
    intervals = wilson_interval(counts, n).tolist()
    scalars = {p: v for p, v in sampler.params().items() if isinstance(v, (int, float, str))}
    return [
        dict(
            sampler=sampler.label,
            **scalars,
            k=k,
            log10_analytic=None if analytic is None else float(analytic[j]),
            mc_hits=int(counts[j]),
            mc_samples=n,
            mc_fraction=int(counts[j]) / n,
            mc_low=intervals[j][0],
            mc_high=intervals[j][1],
        )
        for j, k in enumerate(ks.tolist())
    ]


def format_hit_table(rows: Sequence[dict]) -> str:
    """A markdown table of `hit_table` rows."""
    lines = ["| sampler | k | log10 P analytic | MC hits / samples | MC fraction [95% interval] |", "|" + "---|" * 5]
    for r in rows:
        analytic = "MC only" if r["log10_analytic"] is None else f"{r['log10_analytic']:.2f}"
        lines.append(
            f"| {r['sampler']} | {r['k']:g} | {analytic} | {r['mc_hits']} / {r['mc_samples']} "
            f"| {r['mc_fraction']:.3g} [{r['mc_low']:.3g}, {r['mc_high']:.3g}] |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Shares of hits with their binomial interval.


@functools.partial(jax.jit, static_argnames=("level",))
def wilson_interval(hits, n, level: float = 0.95) -> jax.Array:
    """(..., 2) Wilson score interval of the share hits / n: inside [0, 1] and holding the share, and of a width
    that says how many points were drawn even at 0 or n hits, where the normal approximation's vanishes."""
    z = ndtri(0.5 + level / 2)
    n = jnp.asarray(n, jnp.float32)
    share = jnp.asarray(hits, jnp.float32) / n
    spread = z**2 / n
    centre = (share + spread / 2) / (1 + spread)
    half = z * jnp.sqrt(share * (1 - share) / n + spread / (4 * n)) / (1 + spread)
    return jnp.clip(jnp.stack([jnp.minimum(centre - half, share), jnp.maximum(centre + half, share)], -1), 0, 1)


# ---------------------------------------------------------------------------------------------
# Manifold precision and recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020), blocked.


def _distances(queries: jax.Array, points: jax.Array, points_sq: jax.Array) -> jax.Array:
    """Euclidean distances (B, N) of centred rows through `stats.squared_distances` (one full-precision matmul)."""
    return jnp.sqrt(jnp.maximum(stats.squared_distances(queries, points, points_sq), 0.0))


@functools.partial(jax.jit, static_argnames=("block_size",))
def _balls(support, radii, queries, block_size: int) -> tuple[jax.Array, jax.Array]:
    """Per query, how many support balls hold it (Q,); per support point, whether its ball holds a query (S,)."""
    centre = stats.grid_centre(support)  # an offset of the data must not cost digits
    support, support_sq = stats.centred_with_norms(support, centre)
    n = queries.shape[0]
    blocks = jnp.pad(queries - centre, ((0, -n % block_size), (0, 0))).reshape(-1, block_size, queries.shape[1])
    real_rows = (jnp.arange(blocks.shape[0] * block_size) < n).reshape(-1, block_size)  # not the padding

    def block(reached, rows):
        q, real = rows
        inside = (_distances(q, support, support_sq) <= radii) & real[:, None]
        return reached | jnp.any(inside, axis=0), jnp.sum(inside, axis=1, dtype=jnp.int32)

    reached, counts = lax.scan(block, jnp.zeros(support.shape[0], bool), (blocks, real_rows))
    return counts.reshape(-1)[:n], reached


def ball_membership(support, radii, queries, block_size: int = 256) -> tuple[jax.Array, jax.Array]:
    """(Q,) int32: how many balls of `radii` about the `support` points hold each query; (S,) bool: whether each
    support point's ball holds some query. Every k-NN score here is a mean of one of these."""
    return _membership(support, radii, queries, block_size, ("support", "radii", "queries"))


def _membership(support, radii, queries, block_size: int, names: tuple[str, str, str]):
    """`ball_membership` after checking shapes, naming the arrays as the caller knows them."""
    support, queries = as_points(support, names[0]), as_points(queries, names[2])
    radii = jnp.asarray(radii, jnp.float32)
    if radii.shape != support.shape[:1] or support.shape[1] != queries.shape[1]:
        raise ValueError(
            f"{names[1]} must have shape ({support.shape[0]},) and {names[0]} and {names[2]} the "
            f"same width; got {radii.shape}, {support.shape}, {queries.shape}"
        )
    return _balls(support, radii, queries, min(block_size, queries.shape[0]))


REAL_NAMES = ("real", "real_radii", "generated")


def manifold_precision(real, real_radii, generated, block_size: int = 256) -> jax.Array:
    """Share of generated points within the k-NN radius of some real point (improved precision); real_radii:
    `stats.knn_distances(real, k)`."""
    return jnp.mean(_membership(real, real_radii, generated, block_size, REAL_NAMES)[0] > 0)


def manifold_recall(generated, gen_radii, real, block_size: int = 256) -> jax.Array:
    """Share of real points within the k-NN radius of some generated point (improved recall); gen_radii:
    `stats.knn_distances(generated, k)`."""
    return jnp.mean(_membership(generated, gen_radii, real, block_size, ("generated", "gen_radii", "real"))[0] > 0)


def density(real, real_radii, generated, k: int, block_size: int = 256) -> jax.Array:
    """Real k-NN balls holding a generated point, per generated point, over k (Naeem et al. 2020): about 1 when
    the generated points are distributed as the real ones, above 1 where they crowd where the real ones are dense."""
    return jnp.mean(_membership(real, real_radii, generated, block_size, REAL_NAMES)[0]) / k


def coverage(real, real_radii, generated, block_size: int = 256) -> jax.Array:
    """Share of real points whose k-NN ball holds some generated point (Naeem et al. 2020): unlike recall, it does
    not grow with generated outliers, whose own balls are wide."""
    return jnp.mean(_membership(real, real_radii, generated, block_size, REAL_NAMES)[1])


# ---------------------------------------------------------------------------------------------
# Radius statistics.


@jax.jit
def _radius_moments_mc(points):
    radii = jnp.linalg.norm(points, axis=-1)
    return jnp.mean(radii), jnp.std(radii)


def radius_moments_mc(points) -> tuple[jax.Array, jax.Array]:
    """Sample mean and std of |z| over points (n, D)."""
    return _radius_moments_mc(as_points(points, "points"))


def _centred_radius_powers(points, centre):
    offset = jnp.linalg.norm(points, axis=-1) - centre
    return jnp.stack([offset, offset**2], -1)


def radius_table(
    samplers: Sequence[Sampler], key: jax.Array, num_samples: int = 100_000, block_size: int = 10_000
) -> list[dict]:
    """One row per sampler: analytic mean/std of |z| (and how they were obtained) beside Monte Carlo ones.

    Continuous samplers draw num_samples points; finite ones (the grid) are enumerated completely.
    """
    rows = []
    for i, sampler in enumerate(tqdm(samplers, desc="radius table", leave=False)):
        mean, std = sampler.radius_moments()
        n, block = _stream_length(sampler, num_samples, block_size)
        # Sums of |z| - mean and its square: centring on the analytic mean avoids float32 cancellation.
        offset, offset_sq = _stream_sum(sampler, jax.random.fold_in(key, i), _centred_radius_powers, n, block, mean) / n
        rows.append(
            dict(
                sampler=sampler.label,
                method=sampler.radius_method,
                mean=float(mean),
                std=float(std),
                mc_mean=float(mean + offset),
                mc_std=math.sqrt(max(float(offset_sq - offset**2), 0.0)),
                mc_samples=n,
            )
        )
    return rows
