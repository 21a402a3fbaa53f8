"""Shared figure helpers: image grids with labelled rows (reconstructions, decoded samples)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_image_rows(rows: list[np.ndarray], row_labels: list[str], path: str, title: str = "") -> str:
    """Save images as a grid, one labelled row per array (n, H, W, C) in [0, 1]; returns the path."""
    if len(rows) != len(row_labels):
        raise ValueError(f"{len(rows)} rows but {len(row_labels)} labels")
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.2 * ncols + 1.2, 1.25 * len(rows) + 0.4),
                             squeeze=False)
    for axes_row, images, label in zip(axes, rows, row_labels):
        for j, ax in enumerate(axes_row):
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(images):
                image = np.clip(np.asarray(images[j], np.float32), 0, 1)
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        axes_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
