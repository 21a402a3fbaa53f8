"""Latent-space statistics of z-points (N, D): component histograms and their FWHM, radii, covariance, PCA,
nearest-neighbour distances and t-SNE.

Every numeric function is a pure jitted JAX function of a plain array (numpy or jax); bin widths, ranges and
block sizes are static arguments. Shape problems raise `ValueError` at trace time; `as_points` is the one
check that looks at values. Only data-dependent selections and `tsne` (openTSNE, CPU) run on the host.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from tqdm.auto import tqdm

_HIGHEST = lax.Precision.HIGHEST  # no TF32 shortcuts for float32 matmuls on GPUs


# ---------------------------------------------------------------------------------------------
# Input checks.


def is_concrete(x) -> bool:
    """Whether x holds values (so it can be validated) rather than being traced inside a transformation."""
    return not isinstance(x, jax.core.Tracer)


def _check_points(z, needed: int, what: str) -> None:
    """Raise unless z is 2-D (N points, D components) with at least `needed` points (shapes only)."""
    if np.ndim(z) != 2:
        raise ValueError(f"{what} needs z of shape (N points, D components), a 2-D array; got shape {np.shape(z)}")
    if np.shape(z)[0] < needed:
        raise ValueError(f"{what} needs at least {needed} points, got {np.shape(z)[0]}")


@jax.jit
def _nonfinite_rows(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    bad = ~jnp.all(jnp.isfinite(z), axis=1)
    return bad.sum(), jnp.argmax(bad)


def as_points(z, name: str = "z", min_points: int = 1) -> jax.Array:
    """z as a float32 (N, D) array; ValueError naming `name` unless it is 2-D with at least `min_points` rows of
    numbers without NaN or Inf (values are not checked when z is traced)."""
    z = z if hasattr(z, "dtype") else np.asarray(z)
    _check_points(z, min_points, name)
    dtype = np.dtype(z.dtype)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {dtype}")
    z = jnp.asarray(z, jnp.float32)
    if is_concrete(z):
        count, first = (int(v) for v in _nonfinite_rows(z))
        if count:
            raise ValueError(f"{name} has {count} of {z.shape[0]} rows with NaN or Inf; the first is row {first}")
    return z


def _sum_over_row_blocks(fn: Callable, z: jax.Array, block: int, unroll: bool = False):
    """Sum of fn(rows) over consecutive row blocks of z, so temporaries stay (block, D)-sized.

    A fori_loop keeps the program small; unroll=True writes the blocks out as static slices instead, for
    elementwise-heavy fn: XLA on CPU runs elementwise work inside loop bodies on one thread.
    """

    def add(a, b):
        return jax.tree.map(jnp.add, a, b)

    if unroll:
        return functools.reduce(add, [fn(z[start : start + block]) for start in range(0, z.shape[0], block)])
    n_full, rest = divmod(z.shape[0], block)
    if n_full <= 1:
        return fn(z) if not rest or not n_full else add(fn(z[:block]), fn(z[block:]))
    if rest:
        total = fn(z[n_full * block :])
    else:
        total = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, z[:block]))
    return lax.fori_loop(0, n_full, lambda i, acc: add(acc, fn(lax.dynamic_slice_in_dim(z, i * block, block))), total)


def _mean(z: jax.Array) -> jax.Array:
    """Column means with one refinement pass (the float32 sum of 200,000 rows loses digits)."""
    first = jnp.mean(z, axis=0)
    return first + jnp.mean(z - first, axis=0)


# ---------------------------------------------------------------------------------------------
# Histograms and FWHM (full width at half maximum: the posts' "half-width").


def histogram_edges(bin_width: float, lo: float, hi: float) -> np.ndarray:
    """Float64 bin edges lo, lo + bin_width, ..., hi, as `np.histogram` takes them."""
    if not bin_width > 0 or not hi > lo:
        raise ValueError(f"histogram needs bin_width > 0 and hi > lo, got bin_width={bin_width}, lo={lo}, hi={hi}")
    n_bins = round((hi - lo) / bin_width)
    if n_bins < 1 or not math.isclose(n_bins * bin_width, hi - lo, rel_tol=1e-9):
        raise ValueError(f"histogram range hi - lo = {hi - lo} is not a whole number of bins of width {bin_width}")
    return np.linspace(lo, hi, n_bins + 1)


def _float32_at_or_above(x: np.ndarray) -> np.ndarray:
    """Smallest float32 >= x: float32 data lies below float64 edge x exactly when it lies below this."""
    f = x.astype(np.float32)
    return np.where(f < x, np.nextafter(f, np.float32(np.inf)), f)


def _float32_at_or_below(x: np.ndarray) -> np.ndarray:
    f = x.astype(np.float32)
    return np.where(f > x, np.nextafter(f, np.float32(-np.inf)), f)


def _order_key(x) -> jax.Array:
    """int32 keys ordered like the float32 values, with -0 == +0 and subnormals kept apart from zero
    (XLA on CPU flushes subnormals to zero in float compares, numpy does not)."""
    bits = lax.bitcast_convert_type(jnp.asarray(x, jnp.float32), jnp.int32)
    return jnp.where(bits < 0, (bits ^ 0x7FFFFFFF) + 1, bits)


def _bin_index(x: jax.Array, edges: np.ndarray) -> jax.Array:
    """Bin of each float32 value as np.histogram assigns it: 1..n for the n bins (the last one closed),
    0 below the range and n + 1 above it.

    An arithmetic guess floor((x - lo) / width) is off by at most one near an edge, so one comparison with
    each neighbouring edge makes it exact. Edges that float32 arithmetic reproduces exactly (0.25 steps,
    say) are computed in place; others are looked up in a table.
    """
    n = len(edges) - 1
    lo, width = np.float32(edges[0]), np.float32((edges[-1] - edges[0]) / n)
    lower = _float32_at_or_above(edges)  # x >= edges[k] (float64)  <=>  x >= lower[k] (float32)
    steps = np.arange(n + 1)
    computed = np.float64(lo) + steps * np.float64(width)  # exact in float64; float32 gets it iff these match
    if np.array_equal(computed, lower) and np.array_equal(
        (steps * np.float64(width)).astype(np.float32), steps * np.float64(width)
    ):

        def lower_key(j):
            return _order_key(lo + (j - 1).astype(jnp.float32) * width)
    else:
        table = jnp.concatenate(
            [
                jnp.array([np.iinfo(np.int32).min], jnp.int32),
                _order_key(lower),
                jnp.array([np.iinfo(np.int32).max], jnp.int32),
            ]
        )

        def lower_key(j):
            return table[j]

    guess = jnp.clip(jnp.floor((x - lo) * (1 / width)) + 1, 0, n + 1).astype(jnp.int32)
    key = _order_key(x)
    index = jnp.clip(guess - (key < lower_key(guess)) + (key >= lower_key(guess + 1)), 0, n + 1)
    on_last_edge = (index == n + 1) & (key <= _order_key(_float32_at_or_below(edges[-1:]))[0])
    return jnp.where(on_last_edge, n, index)


_PAIR_TABLE_LIMIT = 1 << 22  # entries (int32) of the joint table when columns are counted in pairs


def _bincount(keys: jax.Array, size: int) -> jax.Array:
    return jnp.zeros(size, jnp.int32).at[keys.ravel()].add(1, mode="promise_in_bounds")


def _count_columns(index: jax.Array, n_values: int) -> jax.Array:
    """(D, n_values) counts of each value 0..n_values-1 in each column of an int array (B, D).

    The scatter-add is the slow part on CPU, so while the joint table stays small, columns are counted in
    pairs (c, c + D/2): one update per pair into an n_values^2 table, then its two marginals.
    """
    d = index.shape[1]
    pairs = d // 2
    if pairs == 0 or n_values**2 * pairs > _PAIR_TABLE_LIMIT:
        return _bincount(index + n_values * jnp.arange(d), n_values * d).reshape(d, n_values)
    joint_keys = index[:, :pairs] * n_values + index[:, pairs : 2 * pairs] + n_values**2 * jnp.arange(pairs)
    joint = _bincount(joint_keys, n_values**2 * pairs).reshape(pairs, n_values, n_values)
    counts = [joint.sum(axis=2), joint.sum(axis=1)]
    if d % 2:
        counts.append(_count_columns(index[:, -1:], n_values))
    return jnp.concatenate(counts)


@functools.partial(jax.jit, static_argnames=("bin_width", "lo", "hi", "block"))
def component_histograms(z, bin_width: float, lo: float, hi: float, block: int = 32768) -> jax.Array:
    """(n_bins, D) int32 counts of each component in `histogram_edges(bin_width, lo, hi)`, equal to
    `np.histogram(z[:, j], edges)` for float32 data (edge values included); values outside [lo, hi] are dropped."""
    _check_points(z, 1, "component_histograms")
    edges = histogram_edges(bin_width, lo, hi)
    n = len(edges) - 1
    z = jnp.asarray(z, jnp.float32)
    counts = _sum_over_row_blocks(lambda rows: _count_columns(_bin_index(rows, edges), n + 2), z, block, unroll=True)
    return counts[:, 1:-1].T


def _peak(counts, edges) -> jax.Array:
    """Centre of the fullest bin (of each column)."""
    edges = jnp.asarray(edges, jnp.float32)
    return ((edges[:-1] + edges[1:]) / 2)[jnp.argmax(counts, axis=0)]


GAUSSIAN_FWHM_PER_STD = 2 * math.sqrt(2 * math.log(2))  # 2.3548: a Gaussian's FWHM / sigma


@jax.jit
def fwhm(counts, edges) -> jax.Array:
    """(D,) full width at half maximum of each column of `counts` (n_bins, D), with linear interpolation
    between bin centres at the outermost half-maximum crossings on either side; 0 for an empty column."""
    counts = jnp.asarray(counts, jnp.float32)
    edges = jnp.asarray(edges, jnp.float32)
    centres = (edges[:-1] + edges[1:]) / 2
    # An empty bin on either side, so every outermost crossing has a bin below half maximum outside it.
    x = jnp.concatenate([centres[:1] - (edges[1] - edges[0]), centres, centres[-1:] + (edges[-1] - edges[-2])])
    h = jnp.pad(counts, ((1, 1), (0, 0)))
    half = h.max(axis=0) / 2
    above = h >= half
    cols = jnp.arange(h.shape[1])
    left = jnp.maximum(jnp.argmax(above, axis=0), 1)  # first bin at or above half maximum
    right = jnp.minimum(h.shape[0] - 1 - jnp.argmax(above[::-1], axis=0), h.shape[0] - 2)  # last such bin

    def crossing(inside, outside):
        h_in, h_out = h[inside, cols], h[outside, cols]
        fraction = (h_in - half) / jnp.where(h_in > h_out, h_in - h_out, 1.0)
        return x[inside] + fraction * (x[outside] - x[inside])

    width = crossing(right, right + 1) - crossing(left, left - 1)
    return jnp.where(half > 0, width, 0.0)


@functools.partial(jax.jit, static_argnames=("bin_width", "lo", "hi"))
def component_summary(z, bin_width: float, lo: float, hi: float) -> dict:
    """Per-component mean, std, histogram peak (bin centre), FWHM, counts, edges, (min, max) range and
    the number of points outside [lo, hi]."""
    _check_points(z, 1, "component_summary")
    z = jnp.asarray(z, jnp.float32)
    edges = histogram_edges(bin_width, lo, hi)
    counts = component_histograms(z, bin_width, lo, hi)
    mean = _mean(z)
    return {
        "mean": mean,
        "std": jnp.sqrt(jnp.mean(jnp.square(z - mean), axis=0)),
        "peak": _peak(counts, edges),
        "fwhm": fwhm(counts, edges),
        "counts": counts,
        "edges": jnp.asarray(edges, jnp.float32),
        "range": jnp.stack([z.min(axis=0), z.max(axis=0)]),
        "outside": z.shape[0] - counts.sum(axis=0),
    }


@jax.jit
def component_importance(mu, fwhm, mu_min: float, fwhm_min: float) -> jax.Array:
    """(D,) max(|mu| / mu_min, fwhm / fwhm_min): >= 1 marks a dominant component."""
    return jnp.maximum(jnp.abs(jnp.asarray(mu)) / mu_min, jnp.asarray(fwhm) / fwhm_min)


def dominant_components(mu, fwhm, mu_min: float, fwhm_min: float) -> np.ndarray:
    """Indices of components with |mu| >= mu_min or FWHM >= fwhm_min, most important first
    (by `component_importance`)."""
    score = np.asarray(component_importance(mu, fwhm, mu_min, fwhm_min))
    chosen = np.flatnonzero(score >= 1)
    return chosen[np.argsort(-score[chosen], kind="stable")]


@jax.jit
def _value_range(z) -> jax.Array:
    return jnp.stack([jnp.min(z), jnp.max(z)])


@jax.jit
def _threshold_counts(mu, fwhm, mu_thresholds, fwhm_thresholds) -> tuple[jax.Array, jax.Array]:
    return (
        jnp.sum(jnp.abs(jnp.asarray(mu))[None] >= jnp.asarray(mu_thresholds)[:, None], axis=1),
        jnp.sum(jnp.asarray(fwhm)[None] >= jnp.asarray(fwhm_thresholds)[:, None], axis=1),
    )


def summary_counts(mu, fwhm, z, mu_thresholds, fwhm_thresholds) -> dict:
    """How many components have |mu| >= each of mu_thresholds and FWHM >= each of fwhm_thresholds;
    with z (None: not) also the value range [min, max]."""
    mu_counts, width_counts = _threshold_counts(mu, fwhm, tuple(mu_thresholds), tuple(fwhm_thresholds))
    counts = {f"mu_abs_ge_{t:g}": int(c) for t, c in zip(mu_thresholds, mu_counts)}
    counts.update({f"fwhm_ge_{t:g}": int(c) for t, c in zip(fwhm_thresholds, width_counts)})
    if z is not None:
        _check_points(z, 1, "summary_counts")
        counts["value_range"] = [float(v) for v in _value_range(z)]
    return counts


# ---------------------------------------------------------------------------------------------
# Radii.


@jax.jit
def radii(z) -> jax.Array:
    """(N,) Euclidean norm of each z-point."""
    _check_points(z, 1, "radii")
    return jnp.sqrt(jnp.sum(jnp.square(jnp.asarray(z, jnp.float32)), axis=1))


def radius_histogram(r, bin_width: float, lo: float = 0.0, hi: float | None = None) -> tuple[jax.Array, np.ndarray]:
    """(counts, edges) of radii in bins of `bin_width` from lo to hi; hi=None: just past the largest radius."""
    if np.ndim(r) != 1 or not np.size(r):
        raise ValueError(f"radius_histogram needs radii of shape (N,) with N >= 1, got shape {np.shape(r)}")
    if hi is None:
        largest = float(jnp.max(r))
        n_bins = max(math.floor((largest - lo) / bin_width) + 1, 1)
        n_bins += lo + n_bins * bin_width < largest  # guard against the division rounding down
        hi = lo + n_bins * bin_width
    counts = component_histograms(jnp.asarray(r)[:, None], bin_width, lo, hi)[:, 0]
    return counts, histogram_edges(bin_width, lo, hi)


def radius_stats(r, histogram: tuple) -> dict:
    """Peak (centre of the fullest bin of `histogram`, the (counts, edges) of `radius_histogram`), mean and std
    of the radii."""
    counts, edges = histogram
    return _peak_mean_std(counts, edges, r)


@jax.jit
def _peak_mean_std(counts, edges, r) -> dict:
    return {"peak": _peak(counts, edges), "mean": jnp.mean(r), "std": jnp.std(r)}


# ---------------------------------------------------------------------------------------------
# Covariance, correlation, PCA, projections.


_COVARIANCE_PANELS = 4  # column panels of the upper-triangle products (5/8 of a full Gram's multiplies)


def _panel_bounds(d: int) -> list[int]:
    """Column indices splitting D components into up to _COVARIANCE_PANELS near-equal panels."""
    n = max(min(_COVARIANCE_PANELS, d), 1)
    return sorted({round(i * d / n) for i in range(n + 1)})


def _upper_panel_products(c: jax.Array, bounds: list[int]) -> list[jax.Array]:
    """Per column panel [lo, hi): c[:, lo:hi].T @ c[:, lo:], the Gram matrix's rows lo..hi from the diagonal on."""
    return [jnp.matmul(c[:, lo:hi].T, c[:, lo:], precision=_HIGHEST) for lo, hi in zip(bounds, bounds[1:])]


def _symmetric_from_panels(panels: list[jax.Array], bounds: list[int], d: int, dtype) -> jax.Array:
    """The (D, D) symmetric matrix whose upper triangle the panels hold (their blocks left of the diagonal unused)."""
    upper = jnp.zeros((d, d), dtype)
    for (lo, hi), panel in zip(zip(bounds, bounds[1:]), panels):
        upper = upper.at[lo:hi, lo:].set(panel)
    return jnp.triu(upper) + jnp.triu(upper, 1).T


@functools.partial(jax.jit, static_argnames=("block", "ddof"))
def covariance(z, block: int = 2048, ddof: int = 1) -> tuple[jax.Array, jax.Array]:
    """(mean (D,), covariance (D, D)) with N - ddof normalisation (ddof=0: maximum likelihood), in float32 or
    float64 for float64 input with x64 on.

    Rows are centred block by block on a first-pass mean before the products, so neither a centred copy of z
    nor the cancellation of E[zz] - E[z]E[z] is needed; the same pass sums the residuals, which refine the
    mean (the float32 sum of 200,000 rows loses digits) and correct the products by the tiny outer product
    of the refinement. Only the upper triangle is multiplied out, in column panels (XLA has no symmetric
    rank-k update), and mirrored."""
    _check_points(z, ddof + 1, "covariance")
    z = jnp.asarray(z, jnp.promote_types(jnp.result_type(z), jnp.float32))
    n, d = z.shape
    first = jnp.mean(z, axis=0)
    bounds = _panel_bounds(d)

    def centred_products(rows):
        residuals = rows - first
        return residuals.sum(axis=0), _upper_panel_products(residuals, bounds)

    residual_sums, panels = _sum_over_row_blocks(centred_products, z, block)
    refinement = residual_sums / n
    products = _symmetric_from_panels(panels, bounds, d, z.dtype) - n * jnp.outer(refinement, refinement)
    return first + refinement, products / (n - ddof)


@jax.jit
def correlation(cov) -> jax.Array:
    """Correlation matrix of a covariance; a constant component correlates 0 with the others (1 with itself)."""
    std = jnp.sqrt(jnp.clip(jnp.diag(cov), 0))
    nonzero = std > 0
    safe = jnp.where(nonzero, std, 1.0)
    corr = jnp.where(nonzero[:, None] & nonzero[None, :], cov / safe[:, None] / safe[None, :], 0.0)
    return jnp.fill_diagonal(jnp.clip(corr, -1.0, 1.0), 1.0, inplace=False)


@flax.struct.dataclass
class PCA:
    mean: jax.Array  # (D,)
    components: jax.Array  # (D, D) unit directions as rows, by decreasing variance
    explained_variance: jax.Array  # (D,) variance along each component (N - 1 normalisation)
    explained_variance_ratio: jax.Array  # (D,) share of the total variance


@jax.jit
def pca_from_covariance(mean, cov) -> PCA:
    """Principal components from the eigendecomposition of a covariance; each component's sign makes its
    largest-magnitude entry positive, so results are reproducible."""
    variance, vectors = jnp.linalg.eigh(cov)
    variance, vectors = jnp.clip(variance[::-1], 0), vectors[:, ::-1].T
    largest = vectors[jnp.arange(len(vectors)), jnp.argmax(jnp.abs(vectors), axis=1)]
    vectors = vectors * jnp.where(largest < 0, -1.0, 1.0)[:, None]
    total = variance.sum()
    return PCA(jnp.asarray(mean), vectors, variance, variance / jnp.where(total > 0, total, 1.0))


@functools.partial(jax.jit, static_argnames="block")
def pca(z, block: int = 4096) -> PCA:
    """PCA of z-points: `pca_from_covariance(*covariance(z))`."""
    return pca_from_covariance(*covariance(z, block))


@functools.partial(jax.jit, static_argnames="n_components")
def pca_transform(pca: PCA, z, n_components: int | None = None) -> jax.Array:
    """(N, n_components) coordinates of z along the leading principal components (all D when None)."""
    _check_points(z, 1, "pca_transform")
    d = pca.components.shape[0]
    if n_components is not None and not 1 <= n_components <= d:
        raise ValueError(f"pca_transform: n_components must be in 1..{d}, got {n_components}")
    basis = pca.components[:n_components]
    return jnp.matmul(jnp.asarray(z, jnp.float32) - pca.mean, basis.T, precision=_HIGHEST)


@jax.jit
def window(points_2d, half_side, centre=(0.0, 0.0)) -> jax.Array:
    """(N,) bool mask of the 2-D points inside the square of half-side `half_side` around `centre`."""
    if np.ndim(points_2d) != 2 or np.shape(points_2d)[1] != 2:
        raise ValueError(f"window needs points of shape (N, 2), got shape {np.shape(points_2d)}")
    return jnp.all(jnp.abs(points_2d - jnp.asarray(centre)) <= half_side, axis=1)


@functools.partial(jax.jit, static_argnames="axes")
def project(z, axes: tuple[int, int], basis: PCA | jax.Array | None = None) -> jax.Array:
    """(N, 2) coordinates of z on two axes (0-based): of a PCA (centred on its mean), of the rows of a
    (D, D) basis, or (basis None) the original components."""
    _check_points(z, 1, "project")
    d = np.shape(z)[1]
    if len(axes) != 2 or not all(0 <= a < d for a in axes):
        raise ValueError(f"project needs two axes in 0..{d - 1}, got {axes}")
    z, axes = jnp.asarray(z, jnp.float32), np.asarray(axes)
    if basis is None:
        return z[:, axes]
    if isinstance(basis, PCA):
        z, basis = z - basis.mean, basis.components
    return jnp.matmul(z, jnp.asarray(basis)[axes].T, precision=_HIGHEST)


# ---------------------------------------------------------------------------------------------
# Nearest neighbours.

_NEIGHBOUR_MARGIN = 4  # extra candidates re-ranked with exact distances in the first round


@jax.jit
def grid_centre(z) -> jax.Array:
    """Column means rounded to a power-of-two step no wider than the largest column spread: centring then keeps
    integer and dyadic data exact (ties on a radius stay ties) while removing any offset."""
    mean = _mean(z)
    spread = jnp.max(jnp.sqrt(jnp.mean(jnp.square(z - mean), axis=0)))
    step = jnp.where(spread > 0, jnp.exp2(jnp.floor(jnp.log2(spread))), 1.0)
    return jnp.round(mean / step) * step


@jax.jit
def centred_with_norms(z, centre) -> tuple[jax.Array, jax.Array]:
    """z minus `centre` (smaller norms: less cancellation in |q|^2 + |x|^2 - 2 q.x) and its squared row norms."""
    z = z - centre
    return z, jnp.sum(jnp.square(z), axis=1)


def squared_distances(queries, points, points_sq) -> jax.Array:
    """(B, N) |q|^2 + |x|^2 - 2 q.x of centred rows in one full-precision float32 matmul (no TF32: CPU and GPU
    agree); the one expanded distance every caller uses."""
    q_sq = jnp.sum(jnp.square(queries), axis=1)
    return q_sq[:, None] + points_sq[None, :] - 2 * jnp.matmul(queries, points.T, precision=_HIGHEST)


def _expansion_tolerance(d: int) -> float:
    """Relative rounding bound of `squared_distances` and of centring in float32, in units of |q|^2 + |x|^2."""
    return (2 * d + 16) * float(np.finfo(np.float32).eps)


@functools.partial(jax.jit, static_argnames=("k", "m"))
def _knn_block(z, centred, sq_norms, queries, among, k: int, m: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sorted distances (B, k) and indices (B, k) of the first k neighbours among rows 0..among-1 of rows
    `queries`, exact over the m candidates with the smallest lower bound of |q - x|^2 (expansion minus its rounding
    bound), and how many rows have a lower bound under the k-th distance squared: when that count is <= m no row
    outside the candidates can be nearer than the k-th, so all k distances are exact (indices up to ties)."""
    d2 = squared_distances(centred[queries], centred, sq_norms)
    lower = d2 - _expansion_tolerance(z.shape[1]) * (sq_norms[queries][:, None] + sq_norms[None, :])
    columns = jnp.arange(z.shape[0])
    lower = jnp.where((columns < among) & (columns != queries[:, None]), lower, jnp.inf)  # neither outside nor self
    _, candidates = lax.top_k(-lower, m)
    exact_sq = jnp.sum(jnp.square(z[queries][:, None, :] - z[candidates]), axis=-1)
    order = jnp.argsort(exact_sq, axis=1)[:, :k]
    nearest_sq = jnp.take_along_axis(exact_sq, order, axis=1)
    count = jnp.sum(lower < nearest_sq[:, -1:], axis=1)
    return jnp.sqrt(nearest_sq), jnp.take_along_axis(candidates, order, axis=1), count


def _knn_round(z, centred, sq_norms, queries: np.ndarray, among: int, k: int, m: int, block: int) -> tuple:
    """`_knn_block` over `queries` in blocks sized so that block x m x D candidate rows stay within block x N."""
    n, d = z.shape
    block = max(1, min(block, len(queries), block * n // (m * d)))
    parts = []
    for start in range(0, len(queries), block):
        chunk = queries[start : start + block]
        padded = np.pad(chunk, (0, block - len(chunk)), mode="edge")  # one shape, one compilation
        parts.append([np.asarray(a)[: len(chunk)] for a in _knn_block(z, centred, sq_norms, padded, among, k, m)])
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def knn_distances(
    z,
    k: int = 1,
    queries=None,
    block: int = 256,
    progress: bool = False,
    all_ranks: bool = False,
    among_first: int | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """(Q,) distance from each query row (default: every row) to its k-th nearest other row of z, exact to
    float32 rounding for any input (near-duplicates, offsets); duplicates of a row count as neighbours at 0.
    all_ranks: instead (distances (Q, k), row indices (Q, k)) of the first k neighbours, nearest first, in the
    same one pass (ties in any order). among_first: the points are z's first rows only (neighbours and default
    queries), so that nested subsets of one array share its shape and compiled programs.

    Candidates are ranked by the centred expansion and re-ranked with direct differences; queries with more rows
    inside the expansion's rounding bound than candidates run again with all of them. Query blocks run against
    all of z, so memory stays at block x N, never N x N.
    """
    if not (isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1):
        raise ValueError(f"knn_distances needs an int k >= 1, got {k!r}")
    k = int(k)
    z = as_points(z, "z", min_points=2)
    n = z.shape[0] if among_first is None else int(among_first)
    if not 1 <= n <= z.shape[0]:
        raise ValueError(f"among_first must be in 1..{z.shape[0]} (the rows of z), got {among_first}")
    if k >= n:
        raise ValueError(
            f"knn_distances with k={k} needs at least {k + 1} points, got {n} (k must be an int in [1, {n - 1}])"
        )
    queries = np.arange(n) if queries is None else np.asarray(queries)
    if queries.ndim != 1 or (
        queries.size and not (np.issubdtype(queries.dtype, np.integer) and 0 <= queries.min() <= queries.max() < n)
    ):
        raise ValueError(f"queries must be a 1-D array of row indices in 0..{n - 1}")
    centred, sq_norms = centred_with_norms(z, grid_centre(z))
    distances, indices = np.zeros((len(queries), k), np.float32), np.zeros((len(queries), k), np.int32)
    pending, m = np.arange(len(queries)), min(k + _NEIGHBOUR_MARGIN, n - 1)
    with tqdm(total=len(queries), desc=f"{k}-NN distances", unit="row", leave=False, disable=not progress) as bar:
        while len(pending):
            found, rows, counts = _knn_round(z, centred, sq_norms, queries[pending].astype(np.int32), n, k, m, block)
            done = counts <= m
            distances[pending[done]], indices[pending[done]] = found[done], rows[done]
            bar.update(int(done.sum()))
            pending, m = pending[~done], min(n - 1, 1 << int(max(counts[~done], default=1) - 1).bit_length())
    if all_ranks:
        return jnp.asarray(distances), jnp.asarray(indices)
    return jnp.asarray(distances[:, -1])


# ---------------------------------------------------------------------------------------------
# Intrinsic dimension from neighbours (evaluators.intrinsic_dimension).


@functools.partial(jax.jit, static_argnames="k")
def mle_dimension_terms(distances, k: int) -> tuple[jax.Array, jax.Array]:
    """Per point (k - 1, sum over j < k of log(T_k / T_j)) from its sorted distances T_1..T_k to its first k
    neighbours (columns of distances (N, >= k)): the ratio of their sums over points is the Levina-Bickel
    maximum-likelihood dimension pooled as MacKay and Ghahramani advise (k = 2: TwoNN). A point with a
    duplicate (T_1 = 0) carries no scale: (0, 0)."""
    if np.ndim(distances) != 2 or not 2 <= k <= np.shape(distances)[1]:
        raise ValueError(f"mle_dimension_terms needs k in 2..{np.shape(distances)[-1]} columns, got k={k}")
    t = jnp.asarray(distances, jnp.float32)[:, :k]
    scaled = t[:, 0] > 0
    logs = jnp.log(jnp.where(scaled[:, None], t, 1.0))
    return jnp.where(scaled, k - 1.0, 0.0), jnp.sum(logs[:, -1:] - logs[:, :-1], axis=1)


@jax.jit
def local_principal_share(z, neighbours) -> tuple[jax.Array, jax.Array]:
    """(shares (Q,), weights (Q,)): the share of each neighbourhood's variance (rows of z indexed by neighbours
    (Q, k)) on its first principal axis, 1 on a line; weight 0 for a neighbourhood of one repeated point."""
    x = jnp.asarray(z, jnp.float32)[neighbours]
    x = x - jnp.mean(x, axis=1, keepdims=True)
    gram = jnp.einsum("qid,qjd->qij", x, x, precision=_HIGHEST)  # (k, k): the same nonzero spectrum as (D, D)
    total = jnp.trace(gram, axis1=1, axis2=2)
    spread = total > 0
    return jnp.linalg.eigvalsh(gram)[:, -1] / jnp.where(spread, total, 1.0), spread.astype(jnp.float32)


@jax.jit
def ratio_of_sums(numerators, denominators, rows) -> tuple[jax.Array, jax.Array]:
    """(sum(numerators) / sum(denominators), (R,) the same over each resample of `rows` (R, N), e.g.
    `bootstrap_rows`): a pooled estimate over points with its bootstrap replicates."""
    numerators, denominators = jnp.asarray(numerators, jnp.float32), jnp.asarray(denominators, jnp.float32)
    resampled = jnp.sum(numerators[rows], axis=1) / jnp.sum(denominators[rows], axis=1)
    return jnp.sum(numerators) / jnp.sum(denominators), resampled


# ---------------------------------------------------------------------------------------------
# t-SNE.


def tsne_points_needed(perplexity: float) -> int:
    """Fewest points t-SNE runs on at this perplexity (openTSNE lowers a perplexity above (N - 1) / 3)."""
    return math.ceil(3 * perplexity) + 1


def tsne_gradient_method(n_points: int) -> str:
    """openTSNE's negative-gradient method for n points: FFT interpolation from 10,000 on, Barnes-Hut below."""
    return "fft" if n_points >= 10_000 else "bh"


def tsne(
    z,
    n_pca: int | None = None,
    perplexity: float = 30.0,
    early_exaggeration: float = 12.0,
    seed: int = 0,
    n_jobs: int = 2,
    n_iter: int = 500,
    early_exaggeration_iter: int = 250,
    **kw,
) -> np.ndarray:
    """(N, 2) openTSNE embedding of z, or of its first n_pca principal components, with a progress bar over its
    iterations (and so a time estimate); extra keyword arguments go to `openTSNE.TSNE`. Gradients by
    `tsne_gradient_method`: Barnes-Hut below 10,000 points, where the FFT grid's fixed cost dominates."""
    import openTSNE

    _check_points(z, tsne_points_needed(perplexity), f"tsne with perplexity {perplexity}")
    x = z if n_pca is None else pca_transform(pca(z), z, n_pca)
    kw.setdefault("negative_gradient_method", tsne_gradient_method(len(z)))
    every = 25
    with tqdm(
        total=n_iter + early_exaggeration_iter, desc=f"t-SNE of {len(z):,} points", unit="iter", leave=False
    ) as bar:

        def tick(iteration, error, embedding):
            bar.update(every)

        embedding = openTSNE.TSNE(
            n_components=2,
            perplexity=perplexity,
            early_exaggeration=early_exaggeration,
            random_state=seed,
            n_jobs=n_jobs,
            n_iter=n_iter,
            early_exaggeration_iter=early_exaggeration_iter,
            callbacks=tick,
            callbacks_every_iters=every,
            **kw,
        )
        return np.asarray(embedding.fit(np.asarray(x, np.float64)))


# ---------------------------------------------------------------------------------------------
# Evidence statistics: what the posts' claims measure, and a grouped bootstrap over points. The rows are dealt at
# random into groups whose sums, Gram matrices and histograms add up; a resample draws groups with replacement,
# so it costs a weighted sum of the groups' totals instead of a pass over the points (with one point a group it
# is the plain bootstrap over points).


@functools.partial(jax.jit, static_argnames="n_groups")
def random_groups(key: jax.Array, z, n_groups: int) -> tuple[jax.Array, jax.Array]:
    """(groups (G, M, D), real (G, M)): the rows of z dealt at random into G = min(n_groups, N) groups of
    M = ceil(N / G) slots; the slots past N (real False) are padding, at most one per group."""
    _check_points(z, 1, "random_groups")
    n, d = z.shape
    g = min(n_groups, n)
    m = -(-n // g)
    order = jax.random.permutation(key, n)
    slots = jnp.zeros((g * m, d), jnp.float32).at[:n].set(jnp.asarray(z, jnp.float32)[order])
    real = jnp.arange(g * m) < n
    return slots.reshape(m, g, d).transpose(1, 0, 2), real.reshape(m, g).T


@jax.jit
def group_sums(groups, real, centre) -> dict:
    """Per group: the number of real rows, their sum and their Gram matrix (G, D, D), of rows minus centre
    (centring first keeps float32 sums of squares from cancelling)."""
    x = (jnp.asarray(groups, jnp.float32) - centre) * real[..., None]
    return {
        "count": real.sum(axis=1).astype(jnp.float32),
        "sum": x.sum(axis=1),
        "gram": jnp.einsum("gmd,gme->gde", x, x, precision=_HIGHEST),
    }


@functools.partial(jax.jit, static_argnames=("bin_width", "lo", "hi"))
def group_histograms(groups, real, bin_width: float, lo: float, hi: float) -> jax.Array:
    """(G, n_bins, D) float32 `component_histograms` of each group's real rows (padding is moved out of range)."""
    rows = jnp.where(real[..., None], jnp.asarray(groups, jnp.float32), -jnp.inf)
    return lax.map(lambda g: component_histograms(g, bin_width, lo, hi), rows).astype(jnp.float32)


def group_weights(key: jax.Array, n_groups: int, resamples: int) -> jax.Array:
    """(resamples, n_groups) float32: how often each resample draws each group (n_groups draws with replacement)."""
    rows = bootstrap_rows(key, n_groups, resamples)
    return jax.vmap(lambda r: jnp.bincount(r, length=n_groups))(rows).astype(jnp.float32)


@jax.jit
def weighted_total(per_group, weights) -> dict:
    """The groups' totals (a pytree of arrays with a leading G axis) summed with weights (G,)."""
    return jax.tree.map(lambda x: jnp.tensordot(weights, x, axes=1, precision=_HIGHEST), per_group)


@jax.jit
def moments_of_sums(sums: dict, centre) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(mean (D,), population variance (D,), covariance (D, D) with N - 1) from `group_sums`-style totals."""
    n = sums["count"]
    offset = sums["sum"] / n
    products = sums["gram"] - n * jnp.outer(offset, offset)
    return centre + offset, jnp.clip(jnp.diag(products), 0) / n, products / jnp.maximum(n - 1, 1)


@jax.jit
def peak_and_fwhm(counts, edges) -> tuple[jax.Array, jax.Array]:
    """(D,) peak (centre of the fullest bin) and `fwhm` of each column of histogram counts (n_bins, D)."""
    return _peak(counts, edges), fwhm(counts, edges)


@jax.jit
def covariance_spectrum(cov) -> jax.Array:
    """(D,) eigenvalues of a covariance, largest first, clipped at 0."""
    return jnp.clip(jnp.linalg.eigvalsh(cov)[::-1], 0)


@functools.partial(jax.jit, static_argnames="shares")
def spectrum_summary(eigenvalues, shares: tuple[float, ...] = (0.5, 0.9)) -> dict:
    """Of eigenvalues (D,), largest first: the participation ratio (sum l)^2 / sum l^2 (how many axes the variance
    spreads over), the first axis' share of the variance, and the fewest axes holding each share."""
    eigenvalues = jnp.asarray(eigenvalues, jnp.float32)
    total = eigenvalues.sum()
    safe = jnp.where(total > 0, total, 1.0)
    cumulative = jnp.cumsum(eigenvalues) / safe
    return {
        "participation_ratio": jnp.square(total) / jnp.where(total > 0, jnp.square(eigenvalues).sum(), 1.0),
        "first_axis_share": eigenvalues[0] / safe,
        "axes_for": {s: 1 + jnp.sum(cumulative < s) for s in shares},
    }


@functools.partial(jax.jit, static_argnames="k")
def top_squares(values, k: int) -> tuple[jax.Array, jax.Array]:
    """Of a vector v (D,): the share of |v|^2 carried by its k largest |v_j|, and v's distance from the span of
    those k coordinate axes (the norm of the rest)."""
    squares = jnp.square(jnp.asarray(values, jnp.float32))
    top = lax.top_k(squares, k)[0].sum()
    total = squares.sum()
    return top / jnp.where(total > 0, total, 1.0), jnp.sqrt(jnp.clip(total - top, 0))


@jax.jit
def median_fwhm_per_gaussian(fwhm, std) -> jax.Array:
    """Median over the non-constant components of FWHM / (2.3548 std): near 1 for Gaussian components."""
    std = jnp.asarray(std, jnp.float32)
    ratio = jnp.asarray(fwhm, jnp.float32) / (GAUSSIAN_FWHM_PER_STD * jnp.where(std > 0, std, 1.0))
    return jnp.nanmedian(jnp.where(std > 0, ratio, jnp.nan))


@jax.jit
def share_beyond_median(mu, fwhm, factor: float) -> jax.Array:
    """Share of components whose |mu| or FWHM exceeds `factor` times its median over the components."""
    mu, fwhm = jnp.abs(jnp.asarray(mu, jnp.float32)), jnp.asarray(fwhm, jnp.float32)
    return jnp.mean((mu > factor * jnp.median(mu)) | (fwhm > factor * jnp.median(fwhm)))


@functools.partial(jax.jit, static_argnames="n")
def gaussian_columns(key: jax.Array, mean, std, n: int) -> jax.Array:
    """(n, D) independent Gaussian columns with the given means and stds (the null of Gaussian components)."""
    mean = jnp.asarray(mean, jnp.float32)
    return mean + jnp.asarray(std, jnp.float32) * jax.random.normal(key, (n, mean.shape[0]), jnp.float32)


# ---------------------------------------------------------------------------------------------
# Bootstrap.


@jax.jit
def shuffle_columns(key: jax.Array, z) -> jax.Array:
    """z with each column permuted independently: the same marginals, the dependence between components gone
    (the null model of independent components)."""
    keys = jax.random.split(key, z.shape[1])
    return jax.vmap(lambda k, column: jax.random.permutation(k, column), in_axes=(0, 1), out_axes=1)(keys, z)


def interval_of(estimate, resampled, level: float = 0.95, bounds=(-math.inf, math.inf)) -> tuple[float, float]:
    """`bootstrap_interval` as two Python floats, for results files and pages."""
    low, high = np.asarray(bootstrap_interval(estimate, resampled, level, tuple(bounds)))
    return float(low), float(high)


def bootstrap_rows(key: jax.Array, n: int, resamples: int) -> jax.Array:
    """(resamples, n) int32 row indices: each row n draws with replacement from 0..n-1."""
    return jax.random.randint(key, (resamples, n), 0, n, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=("level", "bounds"))
def bootstrap_interval(
    estimate, resampled, level: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> jax.Array:
    """(low, high) basic bootstrap interval, within `bounds`, for the statistic's expected value at this sample
    size: the resamples' spread about their own mean, reflected about the estimate.

    About their mean, not the estimate: a statistic biased by its sample size (the Frechet distance) is biased
    again by resampling, so plain percentiles of the resamples can lie wholly above the estimate. Widened to hold
    the estimate: the skewed resamples of a discrete statistic can put their mean outside their quantiles."""
    resampled = jnp.asarray(resampled)
    tail = (1 - level) / 2
    q_low, q_high = jnp.quantile(resampled, jnp.array([tail, 1 - tail]))
    centre = jnp.mean(resampled)
    low = jnp.minimum(estimate - (q_high - centre), estimate)
    high = jnp.maximum(estimate + (centre - q_low), estimate)
    return jnp.clip(jnp.stack([low, high]), *bounds)


# ---------------------------------------------------------------------------------------------
# A VAE's aggregate posterior: active units, its fitted Gaussian against the prior, total correlation.


def _aggregate_posterior(centre, cov_means, posterior_variance, active_threshold) -> dict:
    """The mean (D,) and covariance (D, D) of posterior means and the mean posterior variance (D,) -> the means'
    variance per component ("activity", Burda et al. 2016), the number of components whose activity exceeds
    `active_threshold`, and for the aggregate posterior's fitted Gaussian N(m, S), S = Cov_x(mean) +
    diag(posterior_variance), KL(N(m, S) || N(0, I)) and the Gaussian total correlation
    (sum_j log S_jj - log det S) / 2, in float64 (call under jax.enable_x64)."""
    activity = jnp.diag(cov_means)
    s = (cov_means + jnp.diag(posterior_variance)).astype(jnp.float64)
    centre = centre.astype(jnp.float64)
    logdet = 2 * jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(s))))
    return {
        "activity": activity,
        "mean_posterior_variance": posterior_variance,
        "active_units": jnp.sum(activity > active_threshold),
        "kl_to_prior": 0.5 * (jnp.trace(s) + centre @ centre - s.shape[0] - logdet),
        "total_correlation": 0.5 * (jnp.sum(jnp.log(jnp.diag(s))) - logdet),
    }


@jax.jit
def _aggregate_posterior_resampled(mean, log_var, rows, active_threshold) -> tuple[dict, dict]:
    """`_aggregate_posterior` of the whole set and of each bootstrap resample of its rows: only the covariances in
    a loop, the closed forms vmapped outside it (XLA on CPU runs small ops inside loop bodies slowly)."""
    n, variance = mean.shape[0], jnp.exp(log_var)
    whole = _aggregate_posterior(*covariance(mean, ddof=0), _mean(variance), active_threshold)
    centres, covs = lax.map(lambda r: covariance(mean[r], ddof=0), rows)
    counts = jax.vmap(lambda r: jnp.bincount(r, length=n))(rows).astype(variance.dtype)
    posterior_variances = jnp.matmul(counts, variance, precision=_HIGHEST) / n
    resampled = jax.vmap(_aggregate_posterior, (0, 0, 0, None))(centres, covs, posterior_variances, active_threshold)
    return whole, resampled


def aggregate_posterior(key: jax.Array, mean, log_var, active_threshold: float, resamples: int) -> tuple[dict, dict]:
    """A VAE's latent from its posterior means and log-variances (N, D): (`_aggregate_posterior` of the points,
    the same of `resamples` bootstrap resamples of them, each statistic with a leading resample axis), as numpy."""
    _check_points(mean, 2, "aggregate_posterior")
    if np.shape(log_var) != np.shape(mean):
        raise ValueError(
            f"aggregate_posterior needs log_var shaped like the means, {np.shape(mean)}; got {np.shape(log_var)}"
        )
    with jax.enable_x64(True):
        rows = bootstrap_rows(key, np.shape(mean)[0], resamples)
        mean, log_var = jnp.asarray(mean, jnp.float32), jnp.asarray(log_var, jnp.float32)
        whole, resampled = _aggregate_posterior_resampled(mean, log_var, rows, active_threshold)
        return jax.tree.map(np.asarray, whole), jax.tree.map(np.asarray, resampled)
