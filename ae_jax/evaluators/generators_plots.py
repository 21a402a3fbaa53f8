"""Figures for the sampling study: radius distributions and hit fractions against the box bound.

Inputs are host arrays (the last step of the pipeline); every figure is a PNG with labelled axes and a title.
Non-finite inputs raise ValueError instead of producing empty or NaN figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ae_jax.report.plots import save_figure  # noqa: E402


def _finite(values, name: str) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a non-empty array of finite values")
    return values


def radius_plot(
    data_radii,
    generated_radii: Mapping[str, np.ndarray],
    path: str,
    analytic: Mapping[str, tuple[float, float]] | None = None,
    bins: int = 100,
    title: str = "Radius |z| of generated points vs the data",
) -> str:
    """Histograms (densities) of |z| for the data and each generator; analytic mean +- std as line and band."""
    data_radii = _finite(data_radii, "data_radii")
    generated = {label: _finite(r, f"generated_radii[{label!r}]") for label, r in generated_radii.items()}
    edges = np.histogram_bin_edges(np.concatenate([data_radii, *generated.values()]), bins)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(data_radii, edges, density=True, color="0.7", label="data")
    for i, (label, radii) in enumerate(generated.items()):
        color = f"C{i}"
        ax.hist(radii, edges, density=True, histtype="step", lw=1.5, color=color, label=label)
        if analytic and label in analytic:
            mean, std = analytic[label]
            ax.axvline(mean, color=color, ls="--", lw=1, label=f"{label}: analytic mean ± std")
            ax.axvspan(mean - std, mean + std, color=color, alpha=0.12)
    ax.set(xlabel="radius |z|", ylabel="density", title=title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def hit_fraction_plot(
    rows: Sequence[dict], path: str, x: str = "bound", title: str = "Share of generated points inside the data box"
) -> str:
    """log10 hit probability against the parameter `x` of `hit_table` rows, one colour per k.

    Analytic values are lines, Monte Carlo fractions markers; MC with no hits is drawn as a downward triangle at
    its resolution log10(1 / samples).
    """
    if not rows or any(x not in r for r in rows):
        raise ValueError(f"rows must be non-empty hit_table rows that all have the parameter {x!r}")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, k in enumerate(sorted({r["k"] for r in rows})):
        group = sorted((r for r in rows if r["k"] == k), key=lambda r: r[x])
        color = f"C{i}"
        analytic = [
            (r[x], r["log10_analytic"])
            for r in group
            if r["log10_analytic"] is not None and math.isfinite(r["log10_analytic"])
        ]
        if analytic:
            ax.plot(*zip(*analytic), color=color, label=f"k={k:g} analytic")
        hits = [(r[x], math.log10(r["mc_fraction"])) for r in group if r["mc_hits"] > 0]
        misses = [(r[x], -math.log10(r["mc_samples"])) for r in group if r["mc_hits"] == 0]
        if hits:
            ax.plot(*zip(*hits), "o", color=color, mfc="none", label=f"k={k:g} Monte Carlo")
        if misses:
            ax.plot(*zip(*misses), "v", color=color, label=f"k={k:g} MC: no hits (below)")
    ax.set(xlabel=x, ylabel="log10 P(point inside box)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
