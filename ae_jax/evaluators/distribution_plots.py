"""Figures of the latent-space analysis: each function takes host arrays and a PNG path, returns the path."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ae_jax.report.plots import legend_outside, save_figure, series_colours  # noqa: E402


def component_histograms(
    counts: np.ndarray,
    edges: np.ndarray,
    path: str,
    components: Sequence[int] | None = None,
    title: str = "",
    legend: bool = False,
) -> str:
    """Density of the chosen components (all by default) overlaid as step lines over the bin edges."""
    counts, edges = np.asarray(counts, np.float64), np.asarray(edges, np.float64)
    components = range(counts.shape[1]) if components is None else list(components)
    density = counts / np.maximum(counts.sum(axis=0), 1) / np.diff(edges)[:, None]
    many = len(components) > 12
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = series_colours(counts.shape[1])  # by component index: z[j] has one colour in every figure
    for j in components:
        ax.stairs(
            density[:, j],
            edges,
            color=colours[j],
            lw=0.6 if many else 1.4,
            alpha=0.35 if many else 0.9,
            label=None if many else f"z[{j}]",
        )
    ax.set_xlabel("component value (latent units)")
    ax.set_ylabel("density")
    ax.set_title(title or f"distribution of {len(components)} latent components")
    if legend and not many:
        legend_outside(ax)
    return save_figure(fig, path)


def histogram(
    counts: np.ndarray,
    edges: np.ndarray,
    path: str,
    xlabel: str,
    title: str,
    marker: float | None = None,
    marker_label: str = "",
) -> str:
    """One histogram as bars over its edges, optionally with a vertical line at `marker`."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.stairs(np.asarray(counts), np.asarray(edges), fill=True, alpha=0.75)
    if marker is not None:
        ax.axvline(marker, color="crimson", lw=1.2, label=marker_label)
        legend_outside(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    return save_figure(fig, path)


def heatmap(matrix: np.ndarray, path: str, title: str, label: str = "correlation") -> str:
    """A symmetric matrix (components x components) on a diverging colour scale from -1 to 1."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(np.asarray(matrix), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("component")
    ax.set_ylabel("component")
    ax.set_title(title)
    return save_figure(fig, path)


def scatter(
    points: np.ndarray,
    path: str,
    xlabel: str,
    ylabel: str,
    title: str,
    marker_size: float | None = None,
    limits: tuple[float, float, float, float] | None = None,
    colour: np.ndarray | None = None,
    colour_label: str = "",
) -> str:
    """2-D points with small markers (filaments and voids stay visible), optionally coloured by a value per
    point; marker_size None: smaller the more points; limits: (x0, x1, y0, y1)."""
    points = np.asarray(points)
    if marker_size is None:
        marker_size = float(np.clip(4000 / max(len(points), 1), 0.3, 4.0))
    fig, ax = plt.subplots(figsize=(6.6 if colour is not None else 6, 6))
    style = {} if colour is None else {"c": np.asarray(colour), "cmap": "viridis"}
    drawn = ax.scatter(points[:, 0], points[:, 1], s=marker_size, linewidths=0, alpha=0.6, rasterized=True, **style)
    if colour is not None:
        fig.colorbar(drawn, ax=ax, label=colour_label)
    if limits is not None:
        ax.set_xlim(limits[0], limits[1])
        ax.set_ylim(limits[2], limits[3])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save_figure(fig, path)


def explained_variance(ratio: np.ndarray, path: str, title: str = "PCA explained variance") -> str:
    """Explained-variance ratio per principal component (bars) and its cumulative sum (line)."""
    ratio = np.asarray(ratio)
    index = np.arange(1, len(ratio) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(index, ratio, width=0.8, alpha=0.7, label="per component")
    ax.plot(index, np.cumsum(ratio), color="crimson", lw=1.2, label="cumulative")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance ratio")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    legend_outside(ax)
    return save_figure(fig, path)
