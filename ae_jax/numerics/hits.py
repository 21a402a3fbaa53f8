"""Where do generated z-points land relative to the data? Box hits, manifold precision/recall, radius moments.

The data's region is the box mu +- k * fwhm per component (mu, fwhm: the per-component centre and
FWHM, the full width at half maximum, of the data's z-point histograms: what the posts call the
"half-width"). A point's `box_k` is the smallest k whose box contains it, so
hit fractions for many k come from one pass. Analytic box probabilities are products over components, summed
in log space and reported as log10 so that 0.25**220 is -132.5 rather than 0. The manifold region follows
Kynkaanniemi et al. 2019: the union of balls around each real point with radius its k-th neighbour distance
(`stats.knn_distances`).

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
from tqdm import tqdm

from ae_jax.numerics import stats
from ae_jax.numerics.samplers import Sampler, box_offset
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
    """One row per (sampler, k): analytic log10 hit probability (None: no closed form) and Monte Carlo hits.

    Continuous samplers draw num_samples points; finite ones (the grid) are enumerated completely.
    """
    ks = _check_ks(ks)
    rows = []
    for i, sampler in enumerate(tqdm(samplers, desc="hit table", leave=False)):
        region = _check_region(mu, fwhm, sampler.z_dim)
        n, block = _stream_length(sampler, num_samples, block_size)
        counts = _stream_sum(sampler, jax.random.fold_in(key, i), _box_hit_indicators, n, block, *region, ks)
        analytic = _log10_box_probability(sampler, *region, ks)
        scalars = {p: v for p, v in sampler.params().items() if isinstance(v, (int, float, str))}
        for j, k in enumerate(ks.tolist()):
            fraction = int(counts[j]) / n
            rows.append(
                dict(
                    sampler=sampler.label,
                    **scalars,
                    k=k,
                    log10_analytic=None if analytic is None else float(analytic[j]),
                    mc_hits=int(counts[j]),
                    mc_samples=n,
                    mc_fraction=fraction,
                    mc_stderr=math.sqrt(fraction * (1 - fraction) / n),
                )
            )
    return rows


def format_hit_table(rows: Sequence[dict]) -> str:
    """A markdown table of `hit_table` rows."""
    lines = ["| sampler | k | log10 P analytic | MC hits / samples | MC fraction |", "|---|---|---|---|---|"]
    for r in rows:
        analytic = "MC only" if r["log10_analytic"] is None else f"{r['log10_analytic']:.2f}"
        lines.append(
            f"| {r['sampler']} | {r['k']:g} | {analytic} | {r['mc_hits']} / {r['mc_samples']} "
            f"| {r['mc_fraction']:.3g} ± {r['mc_stderr']:.1g} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Manifold precision and recall (Kynkaanniemi et al. 2019), blocked.


def _map_blocks(fn, queries: jax.Array, block_size: int) -> jax.Array:
    """fn over row blocks of `queries` (zero-padded to whole blocks), results concatenated and trimmed."""
    n = queries.shape[0]
    padded = jnp.pad(queries, ((0, -n % block_size), (0, 0)))
    out = lax.map(fn, padded.reshape(-1, block_size, queries.shape[1]))
    return out.reshape(-1, *out.shape[2:])[:n]


def _distances(queries: jax.Array, points: jax.Array, points_sq: jax.Array) -> jax.Array:
    """Euclidean distances (B, N) of centred rows through `stats.squared_distances` (one full-precision matmul)."""
    return jnp.sqrt(jnp.maximum(stats.squared_distances(queries, points, points_sq), 0.0))


@functools.partial(jax.jit, static_argnames=("block_size",))
def _share_covered(support, radii, queries, block_size: int):
    centre = stats.grid_centre(support)  # an offset of the data must not cost digits
    support, support_sq = stats.centred_with_norms(support, centre)
    covered = _map_blocks(
        lambda q: jnp.any(_distances(q, support, support_sq) <= radii, axis=1), queries - centre, block_size
    )
    return jnp.mean(covered)


def _manifold_share(support, radii, queries, block_size: int, names: tuple[str, str, str]) -> jax.Array:
    """Share of `queries` inside the union of balls of `radii` around the `support` points."""
    support, queries = as_points(support, names[0]), as_points(queries, names[2])
    radii = jnp.asarray(radii, jnp.float32)
    if radii.shape != support.shape[:1] or support.shape[1] != queries.shape[1]:
        raise ValueError(
            f"{names[1]} must have shape ({support.shape[0]},) and {names[0]} and {names[2]} the "
            f"same width; got {radii.shape}, {support.shape}, {queries.shape}"
        )
    return _share_covered(support, radii, queries, min(block_size, queries.shape[0]))


def manifold_precision(real, real_radii, generated, block_size: int = 256) -> jax.Array:
    """Share of generated points within the k-NN radius of some real point (improved precision); real_radii:
    `stats.knn_distances(real, k)`."""
    return _manifold_share(real, real_radii, generated, block_size, ("real", "real_radii", "generated"))


def manifold_recall(generated, gen_radii, real, block_size: int = 256) -> jax.Array:
    """Share of real points within the k-NN radius of some generated point (improved recall); gen_radii:
    `stats.knn_distances(generated, k)`."""
    return _manifold_share(generated, gen_radii, real, block_size, ("generated", "gen_radii", "real"))


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
