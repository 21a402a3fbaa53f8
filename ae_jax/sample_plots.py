"""Figures for the sampling study: radius distributions, hit fractions against the box bound, image grids.

Inputs are host arrays (the last step of the pipeline); every figure is a PNG with labelled axes and a title.
Non-finite inputs raise ValueError instead of producing empty or NaN figures.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _finite(values, name: str) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a non-empty array of finite values")
    return values


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def radius_plot(data_radii, generated_radii: Mapping[str, np.ndarray], path: str,
                analytic: Mapping[str, tuple[float, float]] | None = None, bins: int = 100,
                title: str = "Radius |z| of generated points vs the data") -> str:
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
    return _save(fig, path)


def hit_fraction_plot(rows: Sequence[dict], path: str, x: str = "bound",
                      title: str = "Share of generated points inside the data box") -> str:
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
        analytic = [(r[x], r["log10_analytic"]) for r in group
                    if r["log10_analytic"] is not None and math.isfinite(r["log10_analytic"])]
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
    return _save(fig, path)


def _check_images(images, name: str) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, H, W, C) with n > 0 and C in (1, 3), got {images.shape}")
    if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1]")
    return images


def _mosaic(images: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
    """Tile (n, H, W, C) images into rows of ncols with white padding; missing tiles stay white."""
    n, h, w, c = images.shape
    nrows = -(-n // ncols)
    canvas = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, q = divmod(i, ncols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = image
    return canvas


def image_rows_png(rows: Sequence[tuple[str, np.ndarray]], path: str, title: str = "", ncols: int | None = None,
                   tile_inches: float = 0.9) -> str:
    """One labelled row (or block of rows, ncols wide) of images per (label, images (n, H, W, C) in [0, 1])."""
    if not rows:
        raise ValueError("rows must contain at least one (label, images) pair")
    checked = [(label, _check_images(images, f"images of row {label!r}")) for label, images in rows]
    if len({images.shape[1:] for _, images in checked}) != 1:
        raise ValueError(f"all rows need the same image shape, got {[im.shape[1:] for _, im in checked]}")
    ncols = ncols or max(len(images) for _, images in checked)
    mosaics = [(label, _mosaic(images, ncols)) for label, images in checked]
    heights = [m.shape[0] for _, m in mosaics]
    width = mosaics[0][1].shape[1]
    fig, axes = plt.subplots(len(mosaics), 1, squeeze=False, gridspec_kw=dict(height_ratios=heights),
                             figsize=(tile_inches * ncols, tile_inches * ncols * sum(heights) / width + 0.6))
    for ax, (label, mosaic) in zip(axes[:, 0], mosaics):
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return _save(fig, path)


def image_grid_png(images, path: str, title: str = "", ncols: int = 8) -> str:
    """A grid of images (n, H, W, C) in [0, 1], ncols per row, under a title."""
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    return image_rows_png([("", images)], path, title, min(ncols, len(images)))
