"""Shared figure helpers: the one figure saver, the colours of a figure's series, the legend beside the axes,
and image grids with labelled rows (reconstructions, decoded samples)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from ae_jax import stages  # noqa: E402

DPI = 120
LABEL_WIDTH = 30  # characters per line of a legend entry or row label; longer labels wrap at spaces
# tab10 without its grey (left to reference series such as the data), then tab20's light partners of the same hues
QUALITATIVE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"),
)
WARM = ("#ff7f0e", "#d62728", "#e377c2", "#8c564b")  # the QUALITATIVE hues furthest from viridis


def save_figure(fig, path: str) -> str:
    """Write fig to path (format from its extension) with a tight layout at DPI, atomically, then close it."""
    try:
        fig.tight_layout()
        fmt = os.path.splitext(path)[1][1:] or None
        return stages.write_atomically(path, lambda f: fig.savefig(f, format=fmt, dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


def series_colours(n: int, ordered: bool = False, beside_sweep: bool = False) -> list[str]:
    """n pairwise distinct colours, one per series: viridis for an ordered sweep (the colour reads as the swept
    value; its pale end left out), else QUALITATIVE (WARM hues first for series drawn beside a sweep), and evenly
    spaced turbo hues when more are needed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if ordered:
        return [to_hex(c) for c in matplotlib.colormaps["viridis"](np.linspace(0, 0.85, n))]
    palette = (*WARM, *(c for c in QUALITATIVE if c not in WARM)) if beside_sweep else QUALITATIVE
    if n <= len(palette):
        return list(palette[:n])
    return [to_hex(c) for c in matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, n))]


def wrap_label(label: str) -> str:
    """A legend entry or row label broken at spaces into lines of LABEL_WIDTH characters."""
    return textwrap.fill(label, LABEL_WIDTH, break_long_words=False, break_on_hyphens=False)


def legend_outside(ax, handles: Sequence | None = None, labels: Sequence[str] | None = None, title: str = ""):
    """The legend to the right of the axes, top-aligned, clear of the data, the figure grown to hold it so that
    the axes keep their size; handles and labels default to the axes' labelled artists."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    legend = ax.legend(
        handles,
        [wrap_label(label) for label in labels],
        title=title or None,
        bbox_to_anchor=(1.02, 1),
        loc="upper left",
        borderaxespad=0,
        fontsize=8,
        title_fontsize=8,
    )
    box = legend.get_window_extent(ax.figure.canvas.get_renderer())
    _grow(ax.figure, box.width / ax.figure.dpi + 0.2, box.height / ax.figure.dpi + 1.2)
    return legend


def _grow(fig, extra_width: float, min_height: float = 0.0) -> None:
    """Widen the figure by extra_width inches (room beside the axes) and raise it to at least min_height."""
    fig.set_size_inches(fig.get_figwidth() + extra_width, max(fig.get_figheight(), min_height))


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log ticks to label, written as plain numbers (0.2, 5, 20), not 2x10^-1."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def plain_log_ticks(axis) -> None:
    """Label a log-scaled axis with plain numbers, its minor ticks too when it spans under two decades."""
    axis.set_major_formatter(_PlainLogFormatter())
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))


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
        ax.set_ylabel(wrap_label(label), rotation=0, ha="right", va="center")
    fig.suptitle(title)
    renderer = fig.canvas.get_renderer()  # room for the widest row label: the images keep their width
    _grow(fig, max(ax.yaxis.label.get_window_extent(renderer).width for ax in axes[:, 0]) / fig.dpi + 0.2)
    return save_figure(fig, path)


def image_grid_png(images, path: str, title: str = "", ncols: int = 8) -> str:
    """A grid of images (n, H, W, C) in [0, 1], ncols per row, under a title."""
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    return image_rows_png([("", images)], path, title, min(ncols, len(images)))
