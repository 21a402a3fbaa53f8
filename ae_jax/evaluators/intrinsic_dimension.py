"""The intrinsic_dimension evaluator: intrinsic dimension of a point set as a function of scale, TwoNN (Facco
et al. 2017) with decimation.

TwoNN uses only the ratio mu = r2 / r1 of each point's two nearest-neighbour distances; for points on a
d-dimensional manifold mu follows a Pareto law with exponent d, whose maximum-likelihood estimate is
N / sum(log mu). Running it on random subsets of N, N/2, N/4, ... points probes growing length scales
(the typical r2 grows as points thin out): a filamentary set looks low-dimensional at small scales.
"""

from __future__ import annotations

import os

import numpy as np

from ae_jax.config import IntrinsicConfig
from ae_jax.evaluators import encode, registry
from ae_jax.numerics import stats
from ae_jax.report import pages, plots


def two_nn_dimension(points) -> tuple[float, float]:
    """(maximum-likelihood TwoNN dimension, median second-neighbour distance) of a point set."""
    r1 = np.asarray(stats.knn_distances(points, k=1), np.float64)
    r2 = np.asarray(stats.knn_distances(points, k=2), np.float64)
    keep = r1 > 0  # duplicates carry no scale information
    if keep.sum() < 3:
        raise ValueError(f"TwoNN needs at least 3 distinct points, got {int(keep.sum())}")
    log_mu = np.log(r2[keep] / r1[keep])
    return float(keep.sum() / log_mu.sum()), float(np.median(r2[keep]))


def dimension_vs_scale(points, min_points: int = 64, seed: int = 0, max_points: int = 20_000) -> list[dict]:
    """TwoNN on nested random subsets of max_points, max_points/2, ... down to min_points points."""
    points = np.asarray(points, np.float32)
    stats.as_points(points, "points")
    order = np.random.default_rng(seed).permutation(len(points))
    rows, n = [], min(len(points), max_points)
    while n >= min_points:
        dimension, scale = two_nn_dimension(points[order[:n]])
        rows.append({"n_points": n, "scale_r2": scale, "dimension": dimension})
        n //= 2
    if not rows:
        raise ValueError(f"dimension_vs_scale needs at least {min_points} points, got {len(points)}")
    return rows


def dimension_rows(z, cfg: IntrinsicConfig, seed: int) -> dict[str, list[dict]]:
    """Dimension vs scale of the z-points and of as many points of a Gaussian with their fitted full
    covariance: the null, a space-filling cloud of the same spread; filaments show as a lower dimension."""
    from ae_jax.numerics.samplers import FullGaussianSampler
    from ae_jax.runtime import make_key

    null = FullGaussianSampler.fit(z).sample(make_key(seed), len(z))
    return {
        "z-points": dimension_vs_scale(z, cfg.min_points, seed, cfg.max_points),
        "fitted full Gaussian": dimension_vs_scale(np.asarray(null), cfg.min_points, seed, cfg.max_points),
    }


def dimension_figure(rows_by_label: dict[str, list[dict]], n_factors: int | None, path: str) -> str:
    """TwoNN dimension against scale, one line per point set, and the true number of factors when known."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (label, rows), colour in zip(rows_by_label.items(), plots.series_colours(len(rows_by_label))):
        ax.plot([r["scale_r2"] for r in rows], [r["dimension"] for r in rows], "o-", color=colour, label=label)
    if n_factors is not None:
        ax.axhline(n_factors, color="k", ls="--", lw=1, label=f"true number of factors ({n_factors})")
    ax.set(
        xscale="log",
        xlabel="scale: median 2nd-neighbour distance (subsets N, N/2, N/4, ...; units of the point set)",
        ylabel="TwoNN intrinsic dimension",
        title="Intrinsic dimension vs scale",
    )
    plots.plain_log_ticks(ax.xaxis)
    plots.legend_outside(ax)
    return plots.save_figure(fig, path)


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """TwoNN dimension vs scale of the z-points, of a Gaussian with their full covariance (the space-filling
    null), and of the true factors when the data has them (the embedded faces)."""
    from ae_jax.data import datasets

    cfg = ctx.config
    rows = dimension_rows(encode.points(ctx), cfg.intrinsic, cfg.seed)
    n_factors = None
    if cfg.data.name == "faces":
        labels = datasets.load_split(cfg.data, "train", cfg.seed).labels
        rows["true factors"] = dimension_vs_scale(labels, cfg.intrinsic.min_points, cfg.seed, cfg.intrinsic.max_points)
        n_factors = labels.shape[1]
    png = dimension_figure(rows, n_factors, os.path.join(folder, "intrinsic_dimension.png"))
    pages.write_csv(
        [dict(set=k, **r) for k, rs in rows.items() for r in rs], os.path.join(folder, "intrinsic_dimension.csv")
    )
    return {"rows": rows, "n_factors": n_factors}, {"intrinsic_dimension": png}


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Dimension against scale per point set; the z-points' and the null's at the smallest scale."""
    rows = result.numbers["rows"]
    z, null = rows["z-points"][0], rows["fitted full Gaussian"][0]
    return registry.View(
        headline={"TwoNN dimension": z["dimension"], "of the Gaussian null": null["dimension"]},
        rows=[dict(set=k, **r) for k, rs in rows.items() for r in rs],
        figures=result.figures,
        findings=[
            f"{label}: TwoNN intrinsic dimension of the z-points {z['dimension']:.3g} at the smallest scale, "
            f"against {null['dimension']:.3g} for a Gaussian with their covariance."
        ],
    )


registry.register(
    registry.Evaluator(
        "intrinsic_dimension",
        measure,
        view,
        lambda c: {
            "z": encode.points_digest(c),
            "seed": c.config.seed,
            "data": registry.data_inputs(c) if c.config.data.name == "faces" else None,
        },
        sections=("intrinsic",),
        title="intrinsic dimension",
        per_run=True,
    )
)
