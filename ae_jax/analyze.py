"""Latent-space analysis of z-points (N, D): statistics (ae_jax.stats), figures (ae_jax.analysis_plots),
summary.json and dominant_components.csv in one output folder.

    summary = analyze(load_z("run/z_train.npy"), "run/analysis")
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ae_jax import analysis_plots as plots
from ae_jax import stats

BIN_WIDTH, LO, HI = 0.25, -12.0, 12.0  # component histograms
RADIUS_BIN_WIDTHS = (0.5, stats.RADIUS_PEAK_BIN_WIDTH)
PCA_ZOOM_HALF_SIDES = (10.0, 2.5, 1.0, 0.5, 0.25)
PCA_AXIS_PAIRS = ((1, 18), (8, 35))  # 1-based principal axes, as the figures are named
TSNE_SETTINGS = {"perplexity": 10.0, "early_exaggeration": 16.0}  # the study's settings
N_SHOWN_DOMINANT = 8  # components drawn in components_dominant.png
N_RADIUS_OUTLIERS = 10


def load_z(path: str) -> np.ndarray:
    """Memory-mapped z-points (N, D) from a .npy file, refused unless 2-D, float and finite."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"z-points file {path!r} does not exist")
    try:
        z = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a .npy array of numbers ({e})") from None
    if not isinstance(z, np.ndarray):
        raise ValueError(f"{path}: expected one .npy array, got an .npz archive")
    if not np.issubdtype(z.dtype, np.floating):
        raise ValueError(f"{path}: z-points must be floating point, got dtype {z.dtype}")
    stats.check_finite(z, name=path)
    return z


def _subsample(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted random row indices, `size` of them (all rows when size is None or >= n)."""
    if size is None or size >= n:
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
    *,
    ids: Sequence | None = None,
    tsne_points: int | None = 20000,
    tsne_pca: Sequence[int | None] = (None, 2, 4, 10),
    tsne: bool = True,
    seed: int = 0,
    dominant_mu: float = 0.25,
    dominant_half_width: float = 1.5,
    nn_points: int | None = 20000,
    tsne_kw: dict | None = None,
) -> dict:
    """Measure the distribution of z-points (N, D); write figures, summary.json and dominant_components.csv
    to out_dir and return the summary.

    ids (one per row) name points in the summary and in tsne_embeddings.npz; nn_points / tsne_points:
    random rows used for the nearest-neighbour histogram / t-SNE (None: all); tsne_pca: t-SNE inputs
    (None: raw z, k: first k principal components); tsne_kw: other openTSNE settings (e.g. n_iter).
    """
    stats.check_finite(z)
    n, d = z.shape
    if n < 2:
        raise ValueError(f"analyze needs at least 2 z-points, got {n}")
    if ids is not None and len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries but z has {n} rows")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    z = jnp.asarray(z, jnp.float32)
    m = _measure(z, dominant_mu, dominant_half_width, _subsample(n, nn_points, rng))
    figures, skipped = _figures(z, m)
    tsne_rows = _subsample(n, tsne_points, rng)
    embeddings: dict[str, np.ndarray] = {}
    if tsne:
        jobs, not_run = _tsne_figures(z[tsne_rows], m["radii"][tsne_rows], tsne_pca, seed, tsne_kw or {}, embeddings)
        figures, skipped = figures + jobs, skipped + not_run

    for message in skipped:
        tqdm.write(f"analyze: skipped {message}")
    for name, draw in tqdm(figures, desc="analysis figures", unit="fig"):
        draw(os.path.join(out_dir, name))
    if embeddings:
        named = {} if ids is None else {"ids": np.asarray([_id_of(ids, i) for i in tsne_rows])}
        np.savez(os.path.join(out_dir, "tsne_embeddings.npz"), rows=tsne_rows, **named, **embeddings)

    summary = _summary(m, z, ids, dominant_mu, dominant_half_width)
    summary.update(
        tsne={"points": len(tsne_rows), **TSNE_SETTINGS, "embeddings": sorted(embeddings)},
        figures=[name for name, _ in figures],
        skipped=skipped,
    )
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out_dir, "dominant_components.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "mu", "half_width"])
        writer.writerows([i, f"{m['mu'][i]:.6g}", f"{m['half_width'][i]:.6g}"] for i in summary["dominant_components"])
    return summary


def _measure(z: jax.Array, dominant_mu: float, dominant_half_width: float, nn_rows: np.ndarray) -> dict:
    """Every statistic the figures and the summary need, as host arrays."""
    components = stats.component_summary(z, BIN_WIDTH, LO, HI)
    mu, hw = components["mean"], components["half_width"]
    dominant = stats.dominant_components(mu, hw, dominant_mu, dominant_half_width)
    ranked = np.argsort(
        -np.asarray(stats.component_importance(mu, hw, dominant_mu, dominant_half_width)), kind="stable"
    )
    r = stats.radii(z)
    mean, cov = stats.covariance(z)
    nn = np.asarray(stats.nearest_neighbour_distances(z, 1, queries=nn_rows, progress=True))
    radius_hists = {w: stats.radius_histogram(r, w) for w in RADIUS_BIN_WIDTHS}
    return jax.device_get(
        {
            **{("mu" if k == "mean" else k): v for k, v in components.items()},
            "dominant": dominant,
            "top": dominant if len(dominant) >= 2 else ranked[:2],  # the best two stand in when fewer are dominant
            "radii": r,
            "radius_hists": radius_hists,
            "radius": stats.radius_stats(r, radius_hists[stats.RADIUS_PEAK_BIN_WIDTH]),
            "correlation": stats.correlation(cov),
            "pca": stats.pca_from_covariance(mean, cov),
            "nn_rows": nn_rows,
            "nn": nn,
            "nn_hist": stats.radius_histogram(nn, float(nn.max()) / 100 or 1.0),
        }
    )


def _figures(z: jax.Array, m: dict) -> tuple[list[tuple[str, Callable[[str], str]]], list[str]]:
    """(file name, draw(path)) for every statistics figure, and a message for each one that cannot be drawn."""
    n, d = z.shape
    counts, edges, top, corr, pca = m["counts"], m["edges"], m["top"], m["correlation"], m["pca"]
    peak = float(m["radius"]["peak"])
    pair = _most_correlated_pair(corr, top)
    axes = (int(top[0]), int(top[1]))
    plane = np.asarray(stats.project(z, (0, 1), pca))
    figures = [
        (
            "components_all.png",
            lambda p: plots.component_histograms(counts, edges, p, title=f"all {d} latent components ({n:,} z-points)"),
        ),
        (
            "components_dominant.png",
            lambda p: plots.component_histograms(
                counts,
                edges,
                p,
                components=top[:N_SHOWN_DOMINANT],
                legend=True,
                title=f"{min(len(top), N_SHOWN_DOMINANT)} most dominant of {len(m['dominant'])} dominant components",
            ),
        ),
        *[
            (
                f"radius_hist_{w:g}.png",
                lambda p, w=w: plots.histogram(
                    *m["radius_hists"][w],
                    p,
                    "radius |z|",
                    f"radius of z-points, bins of {w:g}",
                    marker=peak,
                    marker_label=f"peak {peak:.2f} (bins of {stats.RADIUS_PEAK_BIN_WIDTH:g})",
                ),
            )
            for w in RADIUS_BIN_WIDTHS
        ],
        ("correlation.png", lambda p: plots.heatmap(corr, p, f"correlation of the {d} latent components")),
        (
            "dominant_pair_scatter.png",
            lambda p: plots.scatter(
                np.asarray(stats.project(z, pair)),
                p,
                f"z[{pair[0]}]",
                f"z[{pair[1]}]",
                f"dominant components {pair[0]} and {pair[1]} (correlation {corr[pair]:+.2f})",
            ),
        ),
        ("pca_explained_variance.png", lambda p: plots.explained_variance(pca.explained_variance_ratio, p)),
        *[(f"pca_1_2_zoom_{h:g}.png", lambda p, h=h: _pca_zoom(plane, h, p)) for h in PCA_ZOOM_HALF_SIDES],
    ]
    pairs, skipped = _axis_pairs_within(d)
    figures += [
        (
            f"pca_{a}_{b}.png",
            lambda p, a=a, b=b: plots.scatter(
                np.asarray(stats.project(z, (a - 1, b - 1), pca)),
                p,
                f"PC {a}",
                f"PC {b}",
                f"principal axes {a} and {b}",
            ),
        )
        for a, b in pairs
    ]
    figures += [
        (
            "original_axes_dominant.png",
            lambda p: plots.scatter(
                np.asarray(stats.project(z, axes)),
                p,
                f"z[{axes[0]}]",
                f"z[{axes[1]}]",
                f"plane of the two most dominant original axes, {axes[0]} and {axes[1]}",
            ),
        ),
        (
            "nn_distance_hist.png",
            lambda p: plots.histogram(
                *m["nn_hist"],
                p,
                "distance to the nearest other z-point",
                f"nearest-neighbour distances of {len(m['nn_rows']):,} z-points (against all {n:,})",
            ),
        ),
    ]
    return figures, skipped


def _tsne_figures(
    z_rows: jax.Array, radii: np.ndarray, tsne_pca: Sequence[int | None], seed: int, tsne_kw: dict, embeddings: dict
) -> tuple[list[tuple[str, Callable[[str], str]]], list[str]]:
    """(file name, draw(path)) for each t-SNE figure (drawing also stores the embedding in `embeddings`),
    and a message for each one that cannot be made."""
    figures, skipped = [], []
    needed = stats.tsne_points_needed(TSNE_SETTINGS["perplexity"])
    for k in tsne_pca:
        name = "tsne_raw" if k is None else f"tsne_pca{k}"
        if len(z_rows) < needed:
            skipped.append(
                f"{name}.png: t-SNE at perplexity {TSNE_SETTINGS['perplexity']:g} needs {needed} points, "
                f"got {len(z_rows)}"
            )
        elif k is not None and not 1 <= k <= z_rows.shape[1]:
            skipped.append(f"{name}.png: {k} principal components asked for, z_dim is {z_rows.shape[1]}")
        else:
            figures.append(
                (
                    f"{name}.png",
                    lambda p, k=k, name=name: _tsne_figure(z_rows, k, radii, seed, tsne_kw, embeddings, name, p),
                )
            )
    return figures, skipped


def _summary(m: dict, z: jax.Array, ids, dominant_mu: float, dominant_half_width: float) -> dict:
    """The JSON-ready summary of the measurements."""
    n, d = z.shape
    r, nn = m["radii"], m["nn"]

    def floats(values):
        return [float(v) for v in values]

    return {
        "n_points": int(n),
        "z_dim": int(d),
        "histogram": {"bin_width": BIN_WIDTH, "lo": LO, "hi": HI, "points_outside": [int(v) for v in m["outside"]]},
        "mu": floats(m["mu"]),
        "std": floats(m["std"]),
        "peak": floats(m["peak"]),
        "half_width": floats(m["half_width"]),
        "range": [floats(pair) for pair in m["range"].T],
        "dominant_thresholds": {"mu": dominant_mu, "half_width": dominant_half_width},
        "dominant_components": [int(i) for i in m["dominant"]],
        "counts": stats.summary_counts(m["mu"], m["half_width"], z),
        "radius": {k: float(v) for k, v in m["radius"].items()},
        "radius_outliers": [
            {"row": int(i), "id": _id_of(ids, int(i)), "radius": float(r[i])}
            for i in np.argsort(-r, kind="stable")[:N_RADIUS_OUTLIERS]
        ],
        "pca_explained_variance_ratio": floats(m["pca"].explained_variance_ratio),
        "nearest_neighbour": {
            "points": len(nn),
            "mean": float(nn.mean()),
            "median": float(np.median(nn)),
            "min": float(nn.min()),
            "max": float(nn.max()),
        },
    }


def _axis_pairs_within(d: int) -> tuple[list[tuple[int, int]], list[str]]:
    """The PCA_AXIS_PAIRS that exist in d dimensions, and a message for each one that does not."""
    pairs = [(a, b) for a, b in PCA_AXIS_PAIRS if max(a, b) <= d]
    return pairs, [
        f"pca_{a}_{b}.png: principal axis {max(a, b)} is beyond z_dim {d}"
        for a, b in PCA_AXIS_PAIRS
        if (a, b) not in pairs
    ]


def _pca_zoom(plane: np.ndarray, half_side: float, path: str) -> str:
    """The PCA 1-2 plane inside a square window around the origin."""
    inside = np.asarray(stats.window(plane, half_side))
    return plots.scatter(
        plane[inside],
        path,
        "PC 1",
        "PC 2",
        f"PCA plane 1-2, window of half-side {half_side:g} ({inside.sum():,} of {len(plane):,} points)",
        limits=(-half_side, half_side, -half_side, half_side),
    )


def _tsne_figure(
    z_rows, n_pca: int | None, colour: np.ndarray, seed: int, tsne_kw: dict, embeddings: dict, name: str, path: str
) -> str:
    """Embed the rows with t-SNE (raw or on n_pca principal components), keep the embedding, draw it."""
    embedding = stats.tsne(z_rows, n_pca, seed=seed, **TSNE_SETTINGS, **tsne_kw)
    embeddings[name] = embedding
    source = "raw z" if n_pca is None else f"{n_pca} principal components"
    return plots.scatter(
        embedding,
        path,
        "t-SNE 1",
        "t-SNE 2",
        f"t-SNE of {len(embedding):,} z-points ({source})",
        colour=colour,
        colour_label="radius |z|",
    )
