"""Shared figure helpers: the one figure saver, and image grids with labelled rows (reconstructions, decoded
samples)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ae_jax import stages  # noqa: E402

DPI = 120


def save_figure(fig, path: str) -> str:
    """Write fig to path (format from its extension) with a tight layout at DPI, atomically, then close it."""
    try:
        fig.tight_layout()
        fmt = os.path.splitext(path)[1][1:] or None
        return stages.write_atomically(path, lambda f: fig.savefig(f, format=fmt, dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


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
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = image
    return canvas


def image_rows_png(
    rows: Sequence[tuple[str, np.ndarray]],
    path: str,
    title: str = "",
    ncols: int | None = None,
    tile_inches: float = 0.9,
) -> str:
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
    fig, axes = plt.subplots(
        len(mosaics),
        1,
        squeeze=False,
        gridspec_kw=dict(height_ratios=heights),
        figsize=(tile_inches * ncols, tile_inches * ncols * sum(heights) / width + 0.6),
    )
    for ax, (label, mosaic) in zip(axes[:, 0], mosaics):
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return save_figure(fig, path)


def image_grid_png(images, path: str, title: str = "", ncols: int = 8) -> str:
    """A grid of images (n, H, W, C) in [0, 1], ncols per row, under a title."""
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    return image_rows_png([("", images)], path, title, min(ncols, len(images)))
