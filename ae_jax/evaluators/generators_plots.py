"""Figures for the sampling study: radius distributions and hit fractions against the box bound.

Inputs are host arrays (the last step of the pipeline); every figure is a PNG with labelled axes and a title.
Non-finite inputs raise ValueError instead of producing empty or NaN figures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ae_jax.report.plots import legend_outside, plain_log_ticks, save_figure, series_colours  # noqa: E402

PARAMETER_LABELS = {"bound": "uniform bound b: each component in [-b, b] (latent units)"}
UPPER_BOUND_MARKER = r"$\downarrow$"  # an arrow: a bound on P, not a measured point
BOX_TITLE = "data box: mean ± k FWHM"
GRID_SHIFT = 1.04  # author_grid_plot: the factor on k between neighbouring b


def _finite(values, name: str) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a non-empty array of finite values")
    return values


def _sweep(labels: Sequence[str]) -> list[str]:
    """The labels of the largest family of one sampler ("uniform(bound=1)", "uniform(bound=2)", ...), sorted by
    their parameter values: an ordered sweep; [] when no sampler appears twice."""
    families: dict[str, list[str]] = {}
    for label in labels:
        families.setdefault(label.partition("(")[0], []).append(label)
    family = max(families.values(), key=len, default=[])
    values = [tuple(float(v) for v in re.findall(r"=([-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?)", label)) for label in family]
    return [label for _, label in sorted(zip(values, family))] if len(family) > 1 else []


def _generator_colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per generator: a sequential map along the sweep (e.g. the uniform bound), qualitative ones for
    the rest."""
    sweep = _sweep(labels)
    others = [label for label in labels if label not in sweep]
    colours = series_colours(len(sweep), ordered=True) + series_colours(len(others), beside_sweep=bool(sweep))
    return dict(zip(sweep + others, colours))


def _radius_bins(radii: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(bin edges, their widths on the x axis, the axis scale): log-spaced when all radii are positive, so that
    generators whose radii differ by orders of magnitude are each resolved; linear otherwise."""
    if radii.min() > 0:
        edges = np.geomspace(radii.min(), radii.max() * (1 + 1e-9), bins + 1)
        return edges, np.diff(np.log10(edges)), "log"
    edges = np.histogram_bin_edges(radii, bins)
    return edges, np.diff(edges), "linear"


def _density(radii: np.ndarray, edges: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Share of the radii in each bin per unit of bin width on the x axis: the histogram integrates to 1."""
    return np.histogram(radii, edges)[0] / len(radii) / widths


def radius_plot(
    data_radii,
    generated_radii: Mapping[str, np.ndarray],
    path: str,
    analytic: Mapping[str, tuple[float, float]] | None = None,
    bins: int = 100,
    title: str = "Radius |z| of generated points vs the data",
) -> str:
    """Densities of |z| (per unit of the x axis) for the data and each generator, one colour per generator;
    analytic mean +- std as a dashed line and a band in the generator's colour."""
    data_radii = _finite(data_radii, "data_radii")
    generated = {label: _finite(r, f"generated_radii[{label!r}]") for label, r in generated_radii.items()}
    edges, widths, scale = _radius_bins(np.concatenate([data_radii, *generated.values()]), bins)
    colours = _generator_colours(list(generated))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.stairs(_density(data_radii, edges, widths), edges, fill=True, color="0.75", label="data")
    for label, radii in generated.items():
        ax.stairs(_density(radii, edges, widths), edges, lw=1.5, color=colours[label], label=label)
        if analytic and label in analytic:
            mean, std = analytic[label]
            ax.axvline(mean, color=colours[label], ls="--", lw=1)
            ax.axvspan(mean - std, mean + std, color=colours[label], alpha=0.08, lw=0)
    handles, labels = ax.get_legend_handles_labels()
    if analytic:
        handles.append(Line2D([], [], color="k", ls="--", lw=1))
        labels.append("analytic mean (dashed) ± std (band), in the generator's colour")
    ylabel = "density per unit log10 |z|" if scale == "log" else "density"
    ax.set(xscale=scale, xlabel="radius |z| (latent units)", ylabel=ylabel, title=title)
    if scale == "log":
        plain_log_ticks(ax.xaxis)
    legend_outside(ax, handles, labels)
    return save_figure(fig, path)


def hit_fraction_plot(
    rows: Sequence[dict], path: str, x: str = "bound", title: str = "Share of generated points inside the data box"
) -> str:
    """log10 hit probability against the parameter `x` of `hit_table` rows, one colour per k (a sequential map).

    Analytic values are lines, Monte Carlo fractions open circles; MC with no hits is an arrow at its resolution
    log10(1 / samples), an upper bound. An analytic probability of exactly 0 has no place on the log axis: the
    legend names those k and values instead of dropping them silently.
    """
    if not rows or any(x not in r for r in rows):
        raise ValueError(f"rows must be non-empty hit_table rows that all have the parameter {x!r}")
    ks = sorted({r["k"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, colour in zip(ks, series_colours(len(ks), ordered=True)):
        group = sorted((r for r in rows if r["k"] == k), key=lambda r: r[x])
        analytic = [
            (r[x], r["log10_analytic"])
            for r in group
            if r["log10_analytic"] is not None and math.isfinite(r["log10_analytic"])
        ]
        if analytic:
            ax.plot(*zip(*analytic), color=colour)
        hits = [(r[x], math.log10(r["mc_fraction"])) for r in group if r["mc_hits"] > 0]
        misses = [(r[x], -math.log10(r["mc_samples"])) for r in group if r["mc_hits"] == 0]
        if hits:
            ax.plot(*zip(*hits), "o", color=colour, mfc="none")
        if misses:
            ax.plot(*zip(*misses), ls="", marker=UPPER_BOUND_MARKER, ms=12, color=colour)
    ax.set(xlabel=PARAMETER_LABELS.get(x, x), ylabel="log10 P(point inside the data box)", title=title)
    ax.grid(alpha=0.3)
    handles, labels = _hit_legend(ks)
    notes = zero_probability_notes(rows, x)
    legend_outside(ax, handles + [Line2D([], [], ls="")] * len(notes), labels + notes, title=BOX_TITLE)
    return save_figure(fig, path)


def zero_probability_notes(rows: Sequence[dict], x: str = "bound") -> list[str]:
    """One line per k whose analytic probability is exactly 0 somewhere ("k=1: analytic P = 0 (no line) at
    bound 1, 1.5"): those values cannot be drawn on the log axis."""
    notes = []
    for k in sorted({r["k"] for r in rows}):
        zeros = sorted(r[x] for r in rows if r["k"] == k and r["log10_analytic"] == -math.inf)
        if zeros:
            notes.append(f"k={k:g}: analytic P = 0 (no line on a log axis) at {x} {', '.join(f'{v:g}' for v in zeros)}")
    return notes


def _hit_legend(ks: Sequence[float]) -> tuple[list, list[str]]:
    """Legend entries: one colour per k (the box's multiple of the FWHM), then one black entry per mark."""
    colours = series_colours(len(ks), ordered=True)
    handles = [Line2D([], [], color=c, lw=2) for c in colours]
    labels = [f"k={k:g}" for k in ks]
    handles += [
        Line2D([], [], color="k"),
        Line2D([], [], color="k", ls="", marker="o", mfc="none"),
        Line2D([], [], color="k", ls="", marker=UPPER_BOUND_MARKER, ms=12),
    ]
    labels += [
        "analytic probability (line)",
        "Monte Carlo fraction (measured point)",
        "no hit in the samples: P < 1/samples (an upper bound, not a point)",
    ]
    return handles, labels


def author_grid_plot(
    rows: Sequence[dict], scale: float, path: str, title: str = "Post II's uniform grid: z-points inside the data box"
) -> str:
    """Share of uniform z-points inside mu +- k FWHM against k, one colour per b (a sequential map), a panel per
    unit (absolute b, b x `scale`): shares with their 95% intervals; a setting without hits is an arrow at its
    interval's upper bound, a bound rather than a point, since a share of 0 has no place on the log axis. Each b is
    shifted a little along k so that equal shares of different b stay visible."""
    if not rows:
        raise ValueError("rows must be non-empty author_grid rows")
    units = list(dict.fromkeys(r["units"] for r in rows))
    bounds = sorted({r["b"] for r in rows})
    ks = sorted({r["k"] for r in rows})
    colours = dict(zip(bounds, series_colours(len(bounds), ordered=True)))
    shift = {b: GRID_SHIFT ** (i - (len(bounds) - 1) / 2) for i, b in enumerate(bounds)}  # a factor on k
    fig, axes = plt.subplots(1, len(units), figsize=(5 * len(units), 4.5), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        for b in bounds:
            group = sorted((r for r in rows if r["units"] == unit and r["b"] == b), key=lambda r: r["k"])
            hit = [r for r in group if r["hits"] > 0]
            if hit:
                shares = np.array([r["share"] for r in hit])
                spread = [shares - [r["low"] for r in hit], [r["high"] for r in hit] - shares]
                ks_shifted = [r["k"] * shift[b] for r in hit]
                ax.errorbar(ks_shifted, shares, spread, color=colours[b], marker="o", mfc="none", capsize=3)
            missed = [r for r in group if r["hits"] == 0]
            if missed:
                ax.plot(
                    [r["k"] * shift[b] for r in missed],
                    [r["high"] for r in missed],
                    ls="",
                    marker=UPPER_BOUND_MARKER,
                    ms=12,
                    color=colours[b],
                )
        ax.set(xscale="log", yscale="log", xlabel="k: each component within mu ± k FWHM")
        ax.set_title(f"b × {scale:.3g} (the latent's own units)" if unit == "scaled" else "b as written (absolute)")
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of z-points inside the data box")
    fig.suptitle(title)
    handles = [Line2D([], [], color=colours[b], marker="o", mfc="none") for b in bounds]
    labels = [f"uniform in [-b, b], b = {b:g}" for b in bounds]
    handles.append(Line2D([], [], color="k", ls="", marker=UPPER_BOUND_MARKER, ms=12))
    labels.append("no hit: the 95% interval's upper bound (a bound, not a point)")
    legend_outside(axes[0][-1], handles, labels, title="bars: 95% Wilson intervals; b shifted along k")
    return save_figure(fig, path)
