"""Latent-space analysis of z-points (N, D) under a `DistributionConfig`: statistics (ae_jax.numerics.stats), figures
(ae_jax.evaluators.distribution_plots), and the summary the distribution evaluator records, with the evidence for
the posts' claims it measures (`claim_evidence`).

    summary = analyze(z, "out/distribution", config.distribution)
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ae_jax import stages
from ae_jax.config import DistributionConfig
from ae_jax.evaluators import distribution_plots, encode, registry
from ae_jax.evaluators.evidence import AUTHOR_Z_DIM, COUNT_THRESHOLDS, Evidence, author_scale, count_claim_id
from ae_jax.numerics import stats
from ae_jax.report import pages
from ae_jax.report.pages import Share

logger = logging.getLogger(__name__)

Figures = list[tuple[str, Callable[[str], str]]]  # (file name, draw(path) -> path) per figure


@jax.jit
def _min_max(z) -> jax.Array:
    return jnp.stack([jnp.min(z), jnp.max(z)])


def histogram_range(z, cfg: DistributionConfig) -> tuple[float, float]:
    """cfg.hist_range when fixed, else the data's [min, max] rounded out to whole bins (every value counted),
    refused past cfg.max_hist_bins before any histogram is allocated."""
    if cfg.hist_range:
        return cfg.hist_range
    low, high = (float(v) for v in _min_max(z))
    w = cfg.bin_width
    lo, hi = math.floor(low / w) * w, math.ceil(high / w) * w
    lo -= w * (lo > low)  # float rounding of k * w must not leave the extreme values outside
    hi += w * (hi < high or hi <= lo)
    if round((hi - lo) / w) > cfg.max_hist_bins:
        _refuse_wide_range(z, lo, hi, cfg)
    return lo, hi


def _refuse_wide_range(z, lo: float, hi: float, cfg: DistributionConfig) -> None:
    """Raise a ValueError naming the value (row, component) that stretched the data-decided range past
    cfg.max_hist_bins: of the two extremes, the one farther from the median of all values."""
    values = np.asarray(z)
    centre = float(np.median(values))
    flat = int(np.argmax(values) if values.max() - centre >= centre - values.min() else np.argmin(values))
    row, component = np.unravel_index(flat, values.shape)
    bins = round((hi - lo) / cfg.bin_width)
    raise ValueError(
        f"distribution: component {component}, row {row} holds {values[row, component]:g} (the median of all "
        f"values is {centre:.3g}), which stretches the data-decided histogram range to [{lo:g}, {hi:g}]: "
        f"{bins:,} bins of {cfg.bin_width:g}, past distribution.max_hist_bins={cfg.max_hist_bins:,}; set a wider "
        "distribution.bin_width, a fixed distribution.hist_range=LO,HI (the share of values it cuts is reported), "
        "or raise distribution.max_hist_bins"
    )


def components(z, cfg: DistributionConfig) -> dict:
    """Per-component mean, std, peak, FWHM, histogram counts and edges (stats.component_summary) over
    `histogram_range`, with the range's lo, hi and whether the data chose it."""
    lo, hi = histogram_range(z, cfg)
    summary = stats.component_summary(z, cfg.bin_width, lo, hi)
    return {**summary, "lo": lo, "hi": hi, "from_data": not cfg.hist_range}


RESOLVED_BINS = 3  # a FWHM spanning fewer bins is set by the bin width more than by the data


def bin_limited(fwhm, std, bin_width: float) -> dict:
    """Components whose FWHM spans fewer than RESOLVED_BINS bins (their FWHM, and the boxes built on it, then
    read too wide), with the bin width to use: the largest 1-2-5 step giving the narrowest of them RESOLVED_BINS
    bins across 2.3548 std, its FWHM were it Gaussian (the measured FWHM is inflated by the bins; std is not).
    None when they are all constant."""
    fwhm, std = np.asarray(fwhm, np.float64), np.asarray(std, np.float64)
    narrow = np.flatnonzero(fwhm < RESOLVED_BINS * bin_width)
    spread = stats.GAUSSIAN_FWHM_PER_STD * std[narrow]
    to_use = None
    if np.any(spread > 0):
        target = spread[spread > 0].min() / RESOLVED_BINS
        step = 10.0 ** math.floor(math.log10(target))
        to_use = max(m * step for m in (1, 2, 5) if m * step <= target)
    return {"components": [int(j) for j in narrow], "bin_width_to_use": to_use}


def _warn_bin_limited(limited: dict, bin_width: float) -> None:
    """Warn that some components' FWHM is bin-limited (a `bin_limited` report), naming them and what to set."""
    named = limited["components"]
    listed = ", ".join(map(str, named[:8])) + (" ..." if len(named) > 8 else "")
    advice = (
        f"set distribution.bin_width={limited['bin_width_to_use']:g} to resolve them"
        if limited["bin_width_to_use"]
        else "they are constant"
    )
    logger.warning(
        f"warning: {len(named)} components have a FWHM under {RESOLVED_BINS} bins of {bin_width:g} "
        f"(components {listed}): their FWHM is set by the bins and reads too wide; {advice}"
    )


def cut_report(comp: dict, n_points: int) -> dict:
    """How much of the data a fixed histogram range leaves out: share of all values, and count per component."""
    outside = np.asarray(comp["outside"])
    cut = {int(j): int(outside[j]) for j in np.flatnonzero(outside)}
    return {"share": float(outside.sum() / (n_points * len(outside))), "components": cut}


def _subsample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted random row indices, `size` of them (all rows when size is 0 or >= n)."""
    if not size or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size, replace=False))


def _id_of(ids, i: int):
    value = i if ids is None else ids[i]
    return value.item() if isinstance(value, np.generic) else value


def _most_correlated_pair(corr: np.ndarray, candidates: np.ndarray) -> tuple[int, int]:
    """The two of the candidate components (at least two) with the largest |correlation| between them."""
    sub = np.abs(corr[np.ix_(candidates, candidates)])
    np.fill_diagonal(sub, -1)
    a, b = np.unravel_index(np.argmax(sub), sub.shape)
    return int(candidates[a]), int(candidates[b])


def analyze(
    z,
    out_dir: str,
    cfg: DistributionConfig,
    ids: Sequence | None = None,
    seed: int = 0,
    comp: dict | None = None,
) -> dict:
    """Measure the distribution of z-points (N, D); write figures and dominant_components.csv to out_dir and
    return the summary. ids (one per row) name points in the summary and in tsne_embeddings.npz; comp: the
    `components` of z if already computed."""
    z = stats.as_points(z, "z-points", min_points=2)
    n, d = z.shape
    if ids is not None and len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries but z has {n} rows")
    rng = np.random.default_rng(seed)
    m = _measure(z, cfg, comp or components(z, cfg), _subsample(n, cfg.nn_points, rng))
    if not m["from_data"] and m["cut"]["components"]:
        _warn_cut(m["cut"], cfg)
    if m["bin_limited"]["components"]:
        _warn_bin_limited(m["bin_limited"], cfg.bin_width)
    figures, skipped = _figures(z, m, cfg)
    tsne_rows = _subsample(n, cfg.tsne_points, rng)
    embeddings: dict[str, np.ndarray] = {}
    if cfg.tsne:
        jobs, not_run = _tsne_figures(z[tsne_rows], m["radii"][tsne_rows], cfg, seed, embeddings)
        figures, skipped = figures + jobs, skipped + not_run

    for message in skipped:
        logger.info(f"analyze: skipped {message}")
    for name, draw in tqdm(figures, desc="analysis figures", unit="fig"):
        draw(os.path.join(out_dir, name))
    if embeddings:
        named = {} if ids is None else {"ids": np.asarray([_id_of(ids, i) for i in tsne_rows])}
        embeddings_path = os.path.join(out_dir, "tsne_embeddings.npz")
        stages.write_atomically(embeddings_path, lambda f: np.savez(f, rows=tsne_rows, **named, **embeddings))

    summary = _summary(m, z, ids, cfg)
    summary.update(
        tsne={"points": len(tsne_rows), "embeddings": sorted(embeddings)},
        figures=[name for name, _ in figures],
        skipped=skipped,
    )
    dominant = [
        {"index": i, "mu": f"{m['mu'][i]:.6g}", "fwhm": f"{m['fwhm'][i]:.6g}"} for i in summary["dominant_components"]
    ]
    pages.write_csv(dominant, os.path.join(out_dir, "dominant_components.csv"), ("index", "mu", "fwhm"))
    return summary


def _warn_cut(cut: dict, cfg: DistributionConfig) -> None:
    """Warn that a fixed histogram range cuts values (a `cut_report`), naming the first components it cuts."""
    counts = cut["components"]
    named = ", ".join(f"{j} ({c:,} values)" for j, c in list(counts.items())[:8]) + (" ..." if len(counts) > 8 else "")
    logger.warning(
        f"warning: distribution.hist_range={tuple(cfg.hist_range)} cuts {cut['share']:.3g} of all values, "
        f"in {len(counts)} components: {named}; their FWHM and the boxes built on them are biased "
        "(leave distribution.hist_range empty to take the range from the data)"
    )


def _measure(z: jax.Array, cfg: DistributionConfig, comp: dict, nn_rows: np.ndarray) -> dict:
    """Every statistic the figures and the summary need, as host arrays."""
    mu, hw = comp["mean"], comp["fwhm"]
    dominant = stats.dominant_components(mu, hw, cfg.dominant_mu, cfg.dominant_fwhm)
    ranked = np.argsort(
        -np.asarray(stats.component_importance(mu, hw, cfg.dominant_mu, cfg.dominant_fwhm)), kind="stable"
    )
    r = stats.radii(z)
    radius_hists = _radius_histograms(z, r, cfg)
    mean, cov = stats.covariance(z)
    pca = stats.pca_from_covariance(mean, cov)
    plane = np.asarray(stats.project(z, (0, 1), pca))
    spread = np.sqrt(np.asarray(pca.explained_variance[:2]))
    nn = np.asarray(stats.knn_distances(z, 1, queries=nn_rows, progress=True))
    return jax.device_get(
        {
            **{("mu" if k == "mean" else k): v for k, v in comp.items()},
            "cut": cut_report(comp, z.shape[0]),
            "bin_limited": bin_limited(hw, comp["std"], cfg.bin_width),
            "dominant": dominant,
            "top": dominant if len(dominant) >= 2 else ranked[:2],  # the best two stand in when fewer are dominant
            "radii": r,
            "radius_hists": radius_hists,
            "radius": stats.radius_stats(r, radius_hists[cfg.radius_peak_bin_width]),
            "correlation": stats.correlation(cov),
            "pca": pca,
            "plane": plane,
            "zooms": [_zoom_window(plane, h, spread, cfg.zoom_units) for h in cfg.zoom_half_sides],
            "nn_rows": nn_rows,
            "nn": nn,
            "nn_hist": stats.radius_histogram(nn, float(nn.max()) / 100 or 1.0),
        }
    )


def _radius_histograms(z, r, cfg: DistributionConfig) -> dict:
    """stats.radius_histogram of the radii r at each configured bin width, refused (before any is allocated) when
    the largest radius needs more than cfg.max_hist_bins bins, naming its row and that row's largest component."""
    widths = dict.fromkeys((*cfg.radius_bin_widths, cfg.radius_peak_bin_width))
    row = int(np.argmax(r))
    largest, finest = float(r[row]), min(widths)
    if largest / finest >= cfg.max_hist_bins:
        values = np.asarray(z[row])
        component = int(np.argmax(np.abs(values)))
        raise ValueError(
            f"distribution: row {row} has radius {largest:g} (component {component} holds {values[component]:g}), "
            f"which needs over {cfg.max_hist_bins:,} radius bins of {finest:g}, past distribution.max_hist_bins; "
            "set wider distribution.radius_bin_widths and distribution.radius_peak_bin_width, or raise "
            "distribution.max_hist_bins"
        )
    return {w: stats.radius_histogram(r, w) for w in widths}


def _figures(z: jax.Array, m: dict, cfg: DistributionConfig) -> tuple[Figures, list[str]]:
    """(file name, draw(path)) for every statistics figure, and a message for each one that cannot be drawn."""
    pca_pairs, skipped = _pca_pair_figures(z, m, cfg)
    figures = [
        *_component_figures(z, m, cfg),
        *_radius_figures(m, cfg),
        *_correlation_figures(z, m),
        *_pca_figures(m),
        *pca_pairs,
        _dominant_axes_figure(z, m),
        _nearest_neighbour_figure(z, m),
    ]
    return figures, skipped


def _component_figures(z: jax.Array, m: dict, cfg: DistributionConfig) -> Figures:
    """The histograms of all components, and of the most dominant ones with a legend."""
    n, d = z.shape
    counts, edges, top = m["counts"], m["edges"], m["top"]
    shown = min(len(top), cfg.shown_dominant)
    return [
        (
            "components_all.png",
            lambda p: distribution_plots.component_histograms(
                counts, edges, p, title=f"all {d} latent components ({n:,} z-points)"
            ),
        ),
        (
            "components_dominant.png",
            lambda p: distribution_plots.component_histograms(
                counts,
                edges,
                p,
                components=top[: cfg.shown_dominant],
                legend=True,
                title=f"{shown} most dominant of {len(m['dominant'])} dominant components",
            ),
        ),
    ]


def _radius_figures(m: dict, cfg: DistributionConfig) -> Figures:
    """One radius histogram per bin width, each marking the peak."""
    peak = float(m["radius"]["peak"])
    return [
        (
            f"radius_hist_{w:g}.png",
            lambda p, w=w: distribution_plots.histogram(
                *m["radius_hists"][w],
                p,
                "radius |z|",
                f"radius of z-points, bins of {w:g}",
                marker=peak,
                marker_label=f"peak {peak:.2f} (bins of {cfg.radius_peak_bin_width:g})",
            ),
        )
        for w in cfg.radius_bin_widths
    ]


def _correlation_figures(z: jax.Array, m: dict) -> Figures:
    """The correlation heatmap of the components, and the scatter of the most correlated dominant pair."""
    d = z.shape[1]
    corr = m["correlation"]
    pair = _most_correlated_pair(corr, m["top"])
    return [
        (
            "correlation.png",
            lambda p: distribution_plots.heatmap(corr, p, f"correlation of the {d} latent components"),
        ),
        (
            "dominant_pair_scatter.png",
            lambda p: distribution_plots.scatter(
                np.asarray(stats.project(z, pair)),
                p,
                f"z[{pair[0]}]",
                f"z[{pair[1]}]",
                f"dominant components {pair[0]} and {pair[1]} (correlation {corr[pair]:+.2f})",
            ),
        ),
    ]


def _pca_figures(m: dict) -> Figures:
    """The PCA explained variance, and the PCA 1-2 plane inside each zoom window."""
    return [
        (
            "pca_explained_variance.png",
            lambda p: distribution_plots.explained_variance(m["pca"].explained_variance_ratio, p),
        ),
        *[(f"pca_1_2_zoom_{w['half_side']:g}.png", lambda p, w=w: _pca_zoom(m["plane"], w, p)) for w in m["zooms"]],
    ]


def _pca_pair_figures(z: jax.Array, m: dict, cfg: DistributionConfig) -> tuple[Figures, list[str]]:
    """A scatter per configured principal-axis pair that exists in z_dim, and a message for each one that does
    not."""
    pairs, skipped = axis_pairs_within(cfg.pca_axis_pairs, z.shape[1])
    figures = [
        (
            f"pca_{a}_{b}.png",
            lambda p, a=a, b=b: distribution_plots.scatter(
                np.asarray(stats.project(z, (a - 1, b - 1), m["pca"])),
                p,
                f"PC {a}",
                f"PC {b}",
                f"principal axes {a} and {b}",
            ),
        )
        for a, b in pairs
    ]
    return figures, skipped


def _dominant_axes_figure(z: jax.Array, m: dict) -> tuple[str, Callable[[str], str]]:
    """The z-points in the plane of the two most dominant original axes."""
    axes = (int(m["top"][0]), int(m["top"][1]))
    return (
        "original_axes_dominant.png",
        lambda p: distribution_plots.scatter(
            np.asarray(stats.project(z, axes)),
            p,
            f"z[{axes[0]}]",
            f"z[{axes[1]}]",
            f"plane of the two most dominant original axes, {axes[0]} and {axes[1]}",
        ),
    )


def _nearest_neighbour_figure(z: jax.Array, m: dict) -> tuple[str, Callable[[str], str]]:
    """The histogram of the sampled z-points' distances to their nearest other z-point."""
    return (
        "nn_distance_hist.png",
        lambda p: distribution_plots.histogram(
            *m["nn_hist"],
            p,
            "distance to the nearest other z-point",
            f"nearest-neighbour distances of {len(m['nn_rows']):,} z-points (against all {z.shape[0]:,})",
        ),
    )


def _tsne_figures(
    z_rows: jax.Array, radii: np.ndarray, cfg: DistributionConfig, seed: int, embeddings: dict
) -> tuple[Figures, list[str]]:
    """(file name, draw(path)) for each t-SNE figure (drawing also stores the embedding in `embeddings`),
    and a message for each one that cannot be made."""
    figures, skipped = [], []
    needed = stats.tsne_points_needed(cfg.tsne_perplexity)
    for k in cfg.tsne_inputs:
        name = "tsne_raw" if k == 0 else f"tsne_pca{k}"
        if len(z_rows) < needed:
            skipped.append(
                f"{name}.png: t-SNE at perplexity {cfg.tsne_perplexity:g} needs {needed} points, got {len(z_rows)}"
            )
        elif k > z_rows.shape[1]:
            skipped.append(f"{name}.png: {k} principal components asked for, z_dim is {z_rows.shape[1]}")
        else:
            figures.append(
                (
                    f"{name}.png",
                    lambda p, k=k, name=name: _tsne_figure(z_rows, k, radii, cfg, seed, embeddings, name, p),
                )
            )
    return figures, skipped


def _summary(m: dict, z: jax.Array, ids, cfg: DistributionConfig) -> dict:
    """The JSON-ready summary of the measurements."""
    n, d = z.shape
    r, nn = m["radii"], m["nn"]

    def floats(values):
        return [float(v) for v in values]

    return {
        "n_points": int(n),
        "z_dim": int(d),
        "histogram": {
            "bin_width": cfg.bin_width,
            "lo": m["lo"],
            "hi": m["hi"],
            "from_data": bool(m["from_data"]),
            "points_outside": [int(v) for v in m["outside"]],
            "cut_share": m["cut"]["share"],
            "cut_components": m["cut"]["components"],
            "bin_limited": m["bin_limited"],
        },
        "mu": floats(m["mu"]),
        "std": floats(m["std"]),
        "peak": floats(m["peak"]),
        "fwhm": floats(m["fwhm"]),
        "range": [floats(pair) for pair in m["range"].T],
        "dominant_thresholds": {"mu": cfg.dominant_mu, "fwhm": cfg.dominant_fwhm},
        "dominant_components": [int(i) for i in m["dominant"]],
        "counts": stats.summary_counts(m["mu"], m["fwhm"], z, cfg.count_mu, cfg.count_fwhm),
        "radius": {k: float(v) for k, v in m["radius"].items()},
        "radius_outliers": [
            {"row": int(i), "id": _id_of(ids, int(i)), "radius": float(r[i])}
            for i in np.argsort(-r, kind="stable")[: cfg.radius_outliers]
        ],
        "pca_explained_variance_ratio": floats(m["pca"].explained_variance_ratio),
        "pca_zoom": [{k: v for k, v in w.items() if k != "inside"} for w in m["zooms"]],
        "nearest_neighbour": {
            "points": len(nn),
            "mean": float(nn.mean()),
            "median": float(np.median(nn)),
            "min": float(nn.min()),
            "max": float(nn.max()),
        },
    }


def axis_pairs_within(pairs: Sequence[tuple[int, int]], d: int) -> tuple[list[tuple[int, int]], list[str]]:
    """The 1-based principal-axis pairs that exist in d dimensions, and a message for each one that does not."""
    inside = [(a, b) for a, b in pairs if max(a, b) <= d]
    return inside, [
        f"pca_{a}_{b}.png: principal axis {max(a, b)} is beyond z_dim {d}" for a, b in pairs if (a, b) not in inside
    ]


def _zoom_window(plane: np.ndarray, half_side: float, spread: np.ndarray, units: str) -> dict:
    """A window of the PCA 1-2 plane around the mean: half_side standard deviations of each axis (units 'std')
    or half_side itself ('absolute'), with the points inside it."""
    half = half_side * spread if units == "std" else np.array([half_side, half_side])
    inside = np.asarray(stats.window(plane, jnp.asarray(half, jnp.float32)))
    return {
        "half_side": half_side,
        "units": units,
        "half_x": float(half[0]),
        "half_y": float(half[1]),
        "points": int(inside.sum()),
        "inside": inside,
    }


def _pca_zoom(plane: np.ndarray, w: dict, path: str) -> str:
    """The PCA 1-2 plane inside one `_zoom_window`."""
    h, hx, hy = w["half_side"], w["half_x"], w["half_y"]
    scale = f"+-{h:g} std (+-{hx:.3g}, +-{hy:.3g})" if w["units"] == "std" else f"+-{h:g}"
    return distribution_plots.scatter(
        plane[w["inside"]],
        path,
        "PC 1",
        "PC 2",
        f"PCA plane 1-2, window {scale} ({w['points']:,} of {len(plane):,} points)",
        limits=(-hx, hx, -hy, hy),
    )


def _tsne_figure(
    z_rows, n_pca: int, colour: np.ndarray, cfg: DistributionConfig, seed: int, embeddings: dict, name: str, path: str
) -> str:
    """Embed the rows with t-SNE (raw or on n_pca principal components), keep the embedding, draw it."""
    embedding = stats.tsne(
        z_rows,
        n_pca or None,
        perplexity=cfg.tsne_perplexity,
        early_exaggeration=cfg.tsne_early_exaggeration,
        seed=seed,
        n_iter=cfg.tsne_iterations,
        early_exaggeration_iter=cfg.tsne_exaggeration_iterations,
    )
    embeddings[name] = embedding
    source = "raw z" if not n_pca else f"{n_pca} principal components"
    return distribution_plots.scatter(
        embedding,
        path,
        "t-SNE 1",
        "t-SNE 2",
        f"t-SNE of {len(embedding):,} z-points ({source})",
        colour=colour,
        colour_label="radius |z|",
    )


# ---------------------------------------------------------------------------------------------
# Evidence for the posts' claims (ae_jax.studies.claims): each claim's statistic of the z-points, its grouped
# bootstrap interval (stats.random_groups), and its null where the claim names one.

DOMINANCE_FACTOR = 3.0  # few_dominant_axes: |mu| or FWHM past 3x its median over the components
CENTRE_AXES_SHARE = 0.10  # centre_on_few_axes: the 10% of components with the largest |mu|
VARIANCE_SHARES = (0.5, 0.9)  # the fewest principal axes holding these shares of the variance (issue 28 item 4)
SHUFFLED = "column-shuffled z-points (independent components, same marginals)"


@functools.partial(jax.jit, static_argnames=("n_groups", "bin_width", "lo", "hi"))
def _group_totals(key, z, n_groups: int, bin_width: float, lo: float, hi: float) -> tuple[dict, dict, jax.Array]:
    """(per-group totals, their centres, the groups' radii (G, M, 1) with padding at -inf) of the z-points: sums,
    Gram matrices and histograms of the components, sums of the radii."""
    groups, real = stats.random_groups(key, z, n_groups)
    radii = jnp.sqrt(jnp.sum(jnp.square(groups), axis=-1))[..., None]
    centres = {"z": jnp.mean(z, axis=0), "radius": jnp.mean(stats.radii(z))[None]}
    per_group = {
        "z": stats.group_sums(groups, real, centres["z"]),
        "hist": stats.group_histograms(groups, real, bin_width, lo, hi),
        "radius": stats.group_sums(radii, real, centres["radius"]),
    }
    return per_group, centres, jnp.where(real[..., None], radii, -jnp.inf)


@functools.partial(jax.jit, static_argnames=("bin_width", "hi"))
def _resampled_radius_peaks(radii, weights, bin_width: float, hi: float) -> jax.Array:
    """(R,) radius peak (centre of the fullest bin of width bin_width from 0 to hi) under each row of weights."""
    real = jnp.isfinite(radii[..., 0])
    per_group = stats.group_histograms(radii, real, bin_width, 0.0, hi)
    edges = stats.histogram_edges(bin_width, 0.0, hi)
    return jax.lax.map(lambda w: stats.peak_and_fwhm(stats.weighted_total(per_group, w), edges)[0][0], weights)


def _claim_statistics(totals: dict, centres: dict, edges, radius_peak, top_axes: int) -> dict:
    """Every claim's statistic (and the extra numbers beside them) of one set of totals (the data, a resample)
    whose radius peak is radius_peak."""
    mean, var, cov = stats.moments_of_sums(totals["z"], centres["z"])
    _, width = stats.peak_and_fwhm(totals["hist"], edges)
    radius_var = stats.moments_of_sums(totals["radius"], centres["radius"])[1][0]
    d = mean.shape[0]
    per_256 = AUTHOR_Z_DIM / d
    scale = radius_peak * author_scale(1.0, d)  # author_scale is proportional to the radius peak
    measured = {"|mu|": jnp.abs(mean), "FWHM": width}
    spectrum = stats.spectrum_summary(stats.covariance_spectrum(cov), VARIANCE_SHARES)
    centre_share, centre_distance = stats.top_squares(mean, top_axes)
    return {
        "gaussian_components": stats.median_fwhm_per_gaussian(width, jnp.sqrt(var)),
        **{
            count_claim_id(key, scaled): per_256 * jnp.sum(measured[what] >= threshold * (scale if scaled else 1.0))
            for key, what, threshold in COUNT_THRESHOLDS
            for scaled in (False, True)
        },
        "few_dominant_axes": stats.share_beyond_median(mean, width, DOMINANCE_FACTOR),
        "pca_few_axes": spectrum["participation_ratio"] / d,
        "centre_on_few_axes": centre_share,
        "radius_from_components": jnp.sqrt(radius_var),
        "participation_ratio": spectrum["participation_ratio"],
        "first_axis_share": spectrum["first_axis_share"],
        **{f"axes_for_{share:.0%}": axes for share, axes in spectrum["axes_for"].items()},
        "centre_distance_from_top_axes": centre_distance,
        "radius_variance": radius_var,
        "radius_peak": radius_peak,
    }


@functools.partial(jax.jit, static_argnames="top_axes")
def _resampled_statistics(per_group, centres, weights, edges, radius_peaks, top_axes: int) -> dict:
    """`_claim_statistics` of the groups' totals under each row of weights (R, G), one resample at a time."""
    return jax.lax.map(
        lambda w_peak: _claim_statistics(
            stats.weighted_total(per_group, w_peak[0]), centres, edges, w_peak[1], top_axes
        ),
        (weights, radius_peaks),
    )


@jax.jit
def _shuffled_nulls(keys, z) -> dict:
    """Per column shuffle (one per key): the radius variance and participation ratio / z_dim."""

    def one(key):
        shuffled = stats.shuffle_columns(key, z)
        spectrum = stats.spectrum_summary(stats.covariance_spectrum(stats.covariance(shuffled)[1]))
        return {
            "radius_variance": jnp.var(stats.radii(shuffled)),
            "pca_few_axes": spectrum["participation_ratio"] / z.shape[1],
        }

    return jax.lax.map(one, keys)


@functools.partial(jax.jit, static_argnames=("n", "bin_width", "lo", "hi"))
def _gaussian_nulls(keys, mean, std, n: int, bin_width: float, lo: float, hi: float) -> jax.Array:
    """Per key: median FWHM / (2.3548 std) of n points of Gaussian columns with these means and stds, binned alike."""

    def one(key):
        summary = stats.component_summary(stats.gaussian_columns(key, mean, std, n), bin_width, lo, hi)
        return stats.median_fwhm_per_gaussian(summary["fwhm"], summary["std"])

    return jax.lax.map(one, keys)


def _resampled_claims(z: jax.Array, comp: dict, cfg: DistributionConfig, seed: int) -> tuple[dict, dict, np.ndarray]:
    """The claims' statistics (row 0: of the data; then one row per resample), the column-shuffled nulls (radius
    variance, participation ratio / z_dim) and the Gaussian nulls (median FWHM / (2.3548 std)), a row per draw."""
    n, d = z.shape
    group_key, weights_key, shuffle_key, gaussian_key = jax.random.split(jax.random.key(seed), 4)
    radius_hi = float(stats.radius_histogram(stats.radii(z), cfg.radius_peak_bin_width)[1][-1])
    groups = min(cfg.bootstrap_groups, n)
    per_group, centres, radii = _group_totals(group_key, z, groups, cfg.bin_width, comp["lo"], comp["hi"])
    weights = jnp.concatenate(
        [jnp.ones((1, groups)), stats.group_weights(weights_key, groups, cfg.bootstrap_resamples)]
    )
    peaks = _resampled_radius_peaks(radii, weights, cfg.radius_peak_bin_width, radius_hi)
    edges = stats.histogram_edges(cfg.bin_width, comp["lo"], comp["hi"])
    top_axes = math.ceil(CENTRE_AXES_SHARE * d)
    values = jax.device_get(_resampled_statistics(per_group, centres, weights, edges, peaks, top_axes))
    shuffled = jax.device_get(_shuffled_nulls(jax.random.split(shuffle_key, cfg.null_draws), z))
    gaussian_keys = jax.random.split(gaussian_key, cfg.null_draws)
    gaussian = _gaussian_nulls(gaussian_keys, comp["mean"], comp["std"], n, cfg.bin_width, comp["lo"], comp["hi"])
    values["correlation_share"] = 1 - np.mean(shuffled["radius_variance"]) / values["radius_variance"]
    return values, shuffled, np.asarray(gaussian)


def _with_its_interval(values: np.ndarray, level: float, bounds=(-math.inf, math.inf)) -> tuple[float, list[float]]:
    """values[0] (the estimate) and the bootstrap interval of values[1:] (its resamples)."""
    estimate = float(values[0])
    return estimate, list(stats.interval_of(estimate, values[1:], level, bounds))


def _null(draws: np.ndarray, level: float, name: str) -> dict:
    """A random null's Evidence fields: the mean of its draws, and the spread of one draw as its interval."""
    mean = float(np.mean(draws))
    low, high = stats.interval_of(mean, draws, level)
    return {"null": mean, "null_interval": (low, high), "null_name": name}


def claim_evidence(z, comp: dict, cfg: DistributionConfig, seed: int = 0) -> dict:
    """numbers["evidence"] (an `Evidence` record per claim of this evaluator) and the plain numbers beside them
    ("pca_spectrum", "centre", "radius_spread"), each an estimate with its interval; comp: `components(z, cfg)`."""
    z = stats.as_points(z, "z-points", min_points=2)
    n, d = z.shape
    values, shuffled, gaussian = _resampled_claims(z, comp, cfg, seed)
    groups = min(cfg.bootstrap_groups, n)
    size = -(-n // groups)
    unit = "points" if size == 1 else f"{groups} random groups of {size} points"
    method = f"bootstrap over {unit}, {cfg.bootstrap_resamples} resamples, {cfg.interval_level:.0%}"
    null_method = f"{method}; null: the mean of {cfg.null_draws} draws, its interval the spread of one draw"
    count_method = method + ("" if d == AUTHOR_Z_DIM else f"; counts x {AUTHOR_Z_DIM}/{d} (per {AUTHOR_Z_DIM})")
    independent_std = _null(np.sqrt(shuffled["radius_variance"]), cfg.interval_level, SHUFFLED)

    def record(name: str, how: str, bounds: tuple[float, float], **null) -> dict:
        estimate, interval = _with_its_interval(values[name], cfg.interval_level, bounds)
        return Evidence(estimate, tuple(interval), n, how, **null).to_json()

    gaussian_null = _null(gaussian, cfg.interval_level, "Gaussian components of the same means and stds, binned alike")
    evidence = {
        "gaussian_components": record("gaussian_components", null_method, (0, math.inf), **gaussian_null),
        **{
            count_claim_id(key, scaled): record(
                count_claim_id(key, scaled),
                count_method + ("; the radius peak that scales the threshold re-measured per resample" * scaled),
                (0, AUTHOR_Z_DIM),
            )
            for key, _, _ in COUNT_THRESHOLDS
            for scaled in (False, True)
        },
        "few_dominant_axes": record("few_dominant_axes", method, (0, 1)),
        "pca_few_axes": record(
            "pca_few_axes", null_method, (0, 1), **_null(shuffled["pca_few_axes"], cfg.interval_level, SHUFFLED)
        ),
        "centre_on_few_axes": record("centre_on_few_axes", method, (0, 1)),
        "radius_from_components": record("radius_from_components", null_method, (0, math.inf), **independent_std),
    }
    return {"evidence": evidence, **_spread_numbers(values, independent_std, d, method, cfg)}


def _spread_numbers(values: dict, independent_std: dict, d: int, method: str, cfg: DistributionConfig) -> dict:
    """The plain numbers of issue 28 items 3-4 beside the evidence, each with its interval: the PCA spectrum, the
    centre against its largest-|mu| axes, the radius spread against independent components."""

    def plain(name: str, bounds: tuple[float, float]) -> dict:
        estimate, interval = _with_its_interval(values[name], cfg.interval_level, bounds)
        return {"estimate": estimate, "interval": interval}

    return {
        "pca_spectrum": {
            "participation_ratio": plain("participation_ratio", (1, d)),
            "first_axis_share": plain("first_axis_share", (0, 1)),
            **{f"axes_for_{s:.0%}": plain(f"axes_for_{s:.0%}", (1, d)) for s in VARIANCE_SHARES},
            "method": method,
        },
        "centre": {
            "top_axes": math.ceil(CENTRE_AXES_SHARE * d),
            "share_on_top_axes": plain("centre_on_few_axes", (0, 1)),
            "distance_from_top_axes": plain("centre_distance_from_top_axes", (0, math.inf)),
            "method": method,
        },
        "radius_spread": {
            "std": plain("radius_from_components", (0, math.inf)),
            "std_independent": {
                "estimate": independent_std["null"],
                "interval": list(independent_std["null_interval"]),
            },
            "correlation_share": plain("correlation_share", (-math.inf, 1)),
            "peak": plain("radius_peak", (0, math.inf)),  # what scales the posts' thresholds (author_scale)
            "method": f"{method}; the independent variance: the mean of {cfg.null_draws} column shuffles",
        },
    }


# ---------------------------------------------------------------------------------------------
# The distribution evaluator.


def components_of(ctx: registry.RunContext) -> dict:
    """`components` of the context's z-points under its distribution settings, computed once per context."""
    return ctx.memo("components", lambda: jax.device_get(components(encode.points(ctx), ctx.config.distribution)))


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """Per-component distributions, radii, covariance, PCA and t-SNE of the z-points, and the claims' evidence."""
    cfg = ctx.config
    z, comp = encode.points(ctx), components_of(ctx)
    summary = analyze(z, folder, cfg.distribution, encode.point_ids(ctx), cfg.seed, comp)
    summary.update(claim_evidence(z, comp, cfg.distribution, cfg.seed))
    return summary, {name: os.path.join(folder, name) for name in summary["figures"]}


def _with_interval(number: dict, text: str = "{:.3g}") -> str:
    """A plain number of `claim_evidence` as "estimate [low, high]"."""
    low, high = number["interval"]
    return f"{text.format(number['estimate'])} [{text.format(low)}, {text.format(high)}]"


def _spread_findings(a: dict, label: str) -> list[str]:
    """What the radius spread and the PCA spectrum say (results from format 3 on)."""
    if "radius_spread" not in a:
        return []
    spread, pca = a["radius_spread"], a["pca_spectrum"]
    return [
        f"{label}: the radius |z| has std {_with_interval(spread['std'])}, independent components with the same "
        f"marginals (column-shuffled) give {_with_interval(spread['std_independent'])}: "
        f"{_with_interval(spread['correlation_share'], '{:.0%}')} of its variance comes from correlation between "
        "components.",
        f"{label}: the first principal axis holds {_with_interval(pca['first_axis_share'], '{:.1%}')} of the "
        f"variance; {_with_interval(pca['axes_for_50%'])} axes hold 50% and {_with_interval(pca['axes_for_90%'])} "
        f"hold 90%; participation ratio {_with_interval(pca['participation_ratio'])} of {a['z_dim']} axes.",
    ]


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Dominant components, radius, and how many components pass each count threshold (in rows: shares of
    z_dim); findings on the radius spread and the PCA spectrum."""
    a = result.numbers
    d = a["z_dim"]
    counts = {k: v for k, v in a["counts"].items() if isinstance(v, int)}  # components past each threshold
    headline = {
        "dominant components": len(a["dominant_components"]),
        "radius peak": a["radius"]["peak"],
        "radius mean": a["radius"]["mean"],
        **counts,
    }
    outside = sum(a["histogram"]["points_outside"])
    row = {
        "z-points": a["n_points"],
        "z_dim": d,
        "dominant components": Share(len(a["dominant_components"]), d),
        "radius peak": a["radius"]["peak"],
        "radius mean": a["radius"]["mean"],
        **{k: Share(v, d) for k, v in counts.items()},
        "radius std": a["radius"]["std"],
        "values outside the histogram": Share(outside, a["n_points"] * d),
    }
    limited = a["histogram"].get("bin_limited", {"components": []})  # absent from results before format 2
    to_use = limited.get("bin_width_to_use")
    warnings = [
        f"{label}: {len(limited['components'])} of {d} components have a FWHM under {RESOLVED_BINS} bins of "
        f"{a['histogram']['bin_width']:g}: their FWHM is bin-limited (reads too wide)"
        + (f"; distribution.bin_width={to_use:g} resolves them." if to_use else "; they are constant.")
    ]
    return registry.View(
        headline=headline,
        rows=[row],
        figures=result.figures,
        findings=[
            f"{label}: {len(a['dominant_components'])} of {d} components are dominant; the radius |z| peaks at "
            f"{a['radius']['peak']:.3g} (mean {a['radius']['mean']:.3g})."
        ]
        + _spread_findings(a, label),
        warnings=warnings if limited["components"] else [],
    )


registry.register(
    registry.Evaluator(
        "distribution",
        measure,
        view,
        lambda c: {"z": encode.points_digest(c), "seed": c.config.seed},
        sections=("distribution",),
        title="z-point distribution",
        format=3,  # 2: components whose FWHM is bin-limited; 3: the claims' evidence, PCA spectrum, radius spread
        per_run=True,
    )
)
