"""The intrinsic_dimension evaluator: intrinsic dimension of a point set as a function of scale, by TwoNN (Facco
et al. 2017) and the Levina-Bickel MLE, each with a bootstrap interval, against two nulls of as many points; and
the local-PCA one-dimensionality of the smallest neighbourhoods. Post III's filaments are tested by both.

Both estimators read each point's sorted neighbour distances T_1..T_k (stats.mle_dimension_terms; TwoNN is
k = 2, using only mu = T_2 / T_1). Running them on nested random subsets of N, N/2, N/4, ... points probes growing
length scales (the typical neighbour distance grows as points thin out): a filamentary set looks low-dimensional
at small scales. The nulls: a Gaussian with the z-points' fitted covariance (space-filling, the same spread) and
the column-shuffled z-points (independent components, the same marginals).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.config import IntrinsicConfig
from ae_jax.evaluators import encode, registry
from ae_jax.evaluators.evidence import Evidence
from ae_jax.numerics import stats
from ae_jax.report import pages, plots

Z_POINTS, GAUSSIAN, SHUFFLED, FACTORS = "z-points", "fitted full Gaussian", "column-shuffled z-points", "true factors"
ESTIMATORS = {"two_nn": "TwoNN", "mle": "MLE"}  # numbers' key: display name


def sample_sizes(n: int, min_points: int, max_points: int) -> list[int]:
    """min(n, max_points), then halved while at least min_points: the decimation's subset sizes, largest first."""
    sizes, size = [], min(n, max_points)
    while size >= min_points:
        sizes.append(size)
        size //= 2
    if not sizes:
        raise ValueError(f"intrinsic dimension needs at least {min_points} points, got {n}")
    return sizes


@functools.partial(jax.jit, static_argnames=("k", "resamples"))
def dimension_estimates(key, distances, k: int, resamples: int) -> dict:
    """TwoNN and k-neighbour MLE dimension from each point's sorted neighbour distances (N, >= k), each as
    (estimate, its bootstrap replicates over points), and the median second-neighbour distance (the scale)."""
    rows = stats.bootstrap_rows(key, distances.shape[0], resamples)
    return {
        "scale_r2": jnp.median(distances[:, 1]),
        "two_nn": stats.ratio_of_sums(*stats.mle_dimension_terms(distances, 2), rows),
        "mle": stats.ratio_of_sums(*stats.mle_dimension_terms(distances, k), rows),
    }


def dimension_sweep(points, sizes, k: int, key, resamples: int) -> list[dict]:
    """`dimension_estimates` of the first n points (points in random order) for each n of sizes, largest first.
    The subsets after the first share the second's rows (`knn_distances(among_first=n)`): two compiled k-NN
    programs instead of one per size, for an eighth more distances."""
    sweep = []
    for index, n in enumerate(sizes):
        shared = points[: sizes[min(index, 1)]]
        distances, _ = stats.knn_distances(shared, k, all_ranks=True, among_first=n)
        estimates = dimension_estimates(jax.random.fold_in(key, n), distances, k, resamples)
        sweep.append({"n_points": n, **estimates, "scale_r2": float(estimates["scale_r2"])})
    return sweep


def local_axis_share(points, k: int, n_points: int, key, resamples: int) -> tuple:
    """Mean share of local variance on the first local principal axis over the k-neighbourhoods of the first
    n_points points (points in random order), and its bootstrap replicates over those neighbourhoods."""
    queries = np.arange(min(n_points, len(points)))
    _, neighbours = stats.knn_distances(points, k, queries=queries, all_ranks=True)
    shares, weights = stats.local_principal_share(points, neighbours)
    return stats.ratio_of_sums(shares * weights, weights, stats.bootstrap_rows(key, len(queries), resamples))


def point_sets(z, cfg: IntrinsicConfig, seed: int) -> dict[str, np.ndarray]:
    """The z-points in a random order and the two nulls of as many points (up to max_points): a Gaussian with
    their fitted full covariance and the column-shuffled z-points."""
    from ae_jax.numerics.samplers import FullGaussianSampler
    from ae_jax.runtime import make_key

    z = np.asarray(stats.as_points(z, "z-points"))
    ordered = z[np.random.default_rng(seed).permutation(len(z))[: cfg.max_points]]
    gaussian_key, shuffle_key = jax.random.split(make_key(seed))
    return {
        Z_POINTS: ordered,
        GAUSSIAN: np.asarray(FullGaussianSampler.fit(z).sample(gaussian_key, len(ordered))),
        SHUFFLED: np.asarray(stats.shuffle_columns(shuffle_key, ordered)),
    }


def _interval(estimate, replicates) -> tuple[float, float]:
    return stats.interval_of(estimate, replicates, bounds=(0.0, math.inf))


def _with_interval(name: str, estimate_and_replicates) -> dict:
    """{name: estimate, name_low, name_high}: its 95% bootstrap interval."""
    estimate, replicates = estimate_and_replicates
    low, high = _interval(estimate, replicates)
    return {name: float(estimate), f"{name}_low": low, f"{name}_high": high}


def _ratio(a, b) -> tuple:
    """(estimate, replicates) of a / b from two (estimate, replicates) of independent samples."""
    return a[0] / b[0], a[1] / b[1]


def _evidence(estimate, null, n: int, method: str, null_name: str) -> Evidence:
    return Evidence(float(estimate[0]), _interval(*estimate), n, method, float(null[0]), _interval(*null), null_name)


def ratio_evidence(sweeps: dict, estimator: str, index: int, resamples: int) -> Evidence:
    """The z-points' dimension / the fitted Gaussian's at one subset size (sweep index), the column-shuffled
    z-points' / the Gaussian's as its null; intervals from the two clouds' independent bootstrap replicates."""
    z, gaussian, shuffled = (sweeps[label][index][estimator] for label in (Z_POINTS, GAUSSIAN, SHUFFLED))
    return _evidence(
        _ratio(z, gaussian),
        _ratio(shuffled, gaussian),
        sweeps[Z_POINTS][index]["n_points"],
        f"{ESTIMATORS[estimator]} dimension ratio; bootstrap over points of each cloud, {resamples} resamples, 95%",
        f"column-shuffled z-points' {ESTIMATORS[estimator]} dimension / the fitted Gaussian's",
    )


def dimension_figure(rows_by_label: dict[str, list[dict]], n_factors: int | None, path: str) -> str:
    """TwoNN and MLE dimension against the number of points, one panel each, one series per point set with its
    95% interval band, and the true number of factors when known."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours = plots.series_colours(len(rows_by_label))
    for ax, (key, name) in zip(axes, ESTIMATORS.items()):
        for (label, rows), colour in zip(rows_by_label.items(), colours):
            n = [r["n_points"] for r in rows]
            ax.fill_between(
                n, [r[f"{key}_low"] for r in rows], [r[f"{key}_high"] for r in rows], color=colour, alpha=0.25
            )
            ax.plot(n, [r[key] for r in rows], "o-", color=colour, label=label)
        if n_factors is not None:
            ax.axhline(n_factors, color="k", ls="--", lw=1, label=f"true number of factors ({n_factors})")
        ax.set(xscale="log", xlabel="points (subsets N, N/2, N/4, ...: fewer points, larger scale)", title=name)
        plots.plain_log_ticks(ax.xaxis)
    axes[0].set_ylabel("intrinsic dimension (95% bootstrap band)")
    plots.legend_outside(axes[1])
    return plots.save_figure(fig, path)


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """TwoNN and MLE dimension at every subset size of the z-points, the fitted Gaussian, the column-shuffled
    z-points and the true factors when the data has them (the embedded faces); local-PCA shares at the smallest
    scale; the filament claims' evidence."""
    from ae_jax.data import datasets
    from ae_jax.runtime import make_key

    cfg, i = ctx.config, ctx.config.intrinsic
    sets = point_sets(encode.points(ctx), i, cfg.seed)
    n_factors = None
    if cfg.data.name == "faces":
        labels = datasets.load_split(cfg.data, "train", cfg.seed).labels
        sets[FACTORS] = np.asarray(labels, np.float32)[np.random.default_rng(cfg.seed).permutation(len(labels))]
        n_factors = labels.shape[1]
    keys = iter(jax.random.split(jax.random.fold_in(make_key(cfg.seed), 1), len(sets) + 2))
    sweeps = {
        label: dimension_sweep(
            points, sample_sizes(len(points), i.min_points, i.max_points), i.mle_k, next(keys), i.bootstrap_resamples
        )
        for label, points in sets.items()
    }
    shares = {
        label: local_axis_share(sets[label], i.local_pca_k, i.local_pca_points, next(keys), i.bootstrap_resamples)
        for label in (Z_POINTS, GAUSSIAN)
    }
    rows = {
        label: [
            {"n_points": s["n_points"], "scale_r2": s["scale_r2"], **_with_interval("two_nn", s["two_nn"])}
            | _with_interval("mle", s["mle"])
            for s in sweep
        ]
        for label, sweep in sweeps.items()
    }
    n_local = min(i.local_pca_points, len(sets[Z_POINTS]))
    evidence = {
        "filaments_low_dimensional": dataclasses.replace(
            ratio_evidence(sweeps, "two_nn", 0, i.bootstrap_resamples),
            by_scale=tuple(
                ratio_evidence(sweeps, "two_nn", index, i.bootstrap_resamples)
                for index in range(1, len(sweeps[Z_POINTS]))
            ),
        ),
        "filaments_one_dimensional": _evidence(
            shares[Z_POINTS],
            shares[GAUSSIAN],
            n_local,
            f"mean over {n_local} neighbourhoods of {i.local_pca_k} neighbours (all points); bootstrap over "
            f"neighbourhoods, {i.bootstrap_resamples} resamples, 95%",
            "a Gaussian with the z-points' fitted covariance, as many points",
        ),
    }
    by_size = {
        estimator: [
            {"n_points": s["n_points"], **ratio_evidence(sweeps, estimator, index, i.bootstrap_resamples).to_json()}
            for index, s in enumerate(sweeps[Z_POINTS])
        ]
        for estimator in ESTIMATORS
    }
    png = dimension_figure(rows, n_factors, os.path.join(folder, "intrinsic_dimension.png"))
    pages.write_csv(
        [dict(set=k, **r) for k, rs in rows.items() for r in rs], os.path.join(folder, "intrinsic_dimension.csv")
    )
    numbers = {
        "rows": rows,
        "local_pca": {label: _with_interval("share", share) for label, share in shares.items()},
        "n_factors": n_factors,
        "evidence": {claim_id: e.to_json() for claim_id, e in evidence.items()},
        "evidence_by_size": {"filaments_low_dimensional": by_size},
    }
    return numbers, {"intrinsic_dimension": png}


def _text(r: dict, name: str) -> str:
    """'estimate [low, high]' of a row's number and its 95% interval."""
    return f"{r[name]:.3g} [{r[f'{name}_low']:.3g}, {r[f'{name}_high']:.3g}]"


def size_rows(rows: dict[str, list[dict]]) -> list[dict]:
    """One row per subset size: each estimator's dimension of each point set with its interval."""
    return [
        {"points": by_set[0]["n_points"]}
        | {f"{name} {label}": _text(r, key) for key, name in ESTIMATORS.items() for label, r in zip(rows, by_set)}
        for by_set in zip(*rows.values())
    ]


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Dimension against scale per point set; the z-points' and the nulls' at the smallest scale, the ratio the
    claim reads, and the local-PCA shares."""
    numbers = result.numbers
    rows, local = numbers["rows"], numbers["local_pca"]
    z, gaussian, shuffled = (rows[k][0] for k in (Z_POINTS, GAUSSIAN, SHUFFLED))
    ratio = Evidence.of(numbers["evidence"]["filaments_low_dimensional"])
    return registry.View(
        headline={
            "TwoNN dimension": z["two_nn"],
            "of the Gaussian null": gaussian["two_nn"],
            "local first-axis share": local[Z_POINTS]["share"],
        },
        rows=size_rows(rows),
        figures=result.figures,
        findings=[
            f"{label}: at the smallest scale ({z['n_points']:,} points) TwoNN dimension {_text(z, 'two_nn')} "
            f"against {_text(gaussian, 'two_nn')} for a Gaussian with their covariance (ratio {ratio.estimate:.3g} "
            f"[{ratio.interval[0]:.3g}, {ratio.interval[1]:.3g}]) and {_text(shuffled, 'two_nn')} column-shuffled; "
            f"MLE {_text(z, 'mle')}, {_text(gaussian, 'mle')} and {_text(shuffled, 'mle')}. The first local "
            f"principal axis holds {_text(local[Z_POINTS], 'share')} of the local variance "
            f"({_text(local[GAUSSIAN], 'share')} for the Gaussian)."
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
        format=3,  # 2: TwoNN and MLE with intervals, shuffled null, local PCA, evidence; 3: evidence by scale
    )
)
