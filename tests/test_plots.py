"""Figures read at a glance: one colour per series, legends beside the data, never over it."""

import math

import numpy as np
import pytest
from matplotlib.colors import to_hex

from ae_jax.evaluators import distribution_plots, generators_plots, intrinsic_dimension
from ae_jax.report import plots

BOUNDS = (1, 1.5, 2, 3, 5, 10, 12)
OTHERS = ("isotropic(mu=0, sigma=1)", "diagonal(std_min=0.12, std_max=0.21)", "full(jitter=0)", "mixture(n=10)")


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions would save, kept open instead (their layout applied as when saving)."""
    figures = []

    def keep(fig, path):
        fig.tight_layout()
        fig.canvas.draw()
        figures.append(fig)
        return path

    for module in (generators_plots, distribution_plots, plots):
        monkeypatch.setattr(module, "save_figure", keep)
    yield figures
    import matplotlib.pyplot as plt

    plt.close("all")


def _radius_vs_data(rng):
    """Data radii and 11 generators like the default sweep: 7 uniform bounds, then 4 fitted generators."""
    labels = [f"uniform(bound={b:g})" for b in BOUNDS] + list(OTHERS)
    scales = [*BOUNDS, 0.9, 0.8, 0.8, 0.8]
    radii = {label: np.abs(rng.normal(s, 0.1 * s, 500)) for label, s in zip(labels, scales)}
    analytic = {label: (s, 0.1 * s) for label, s in zip(labels, scales)}
    return np.abs(rng.normal(0.8, 0.1, 500)), radii, analytic


def _assert_legend_beside_data(fig):
    """Every axes' legend lies wholly outside that axes' data area."""
    renderer = fig.canvas.get_renderer()
    legends = [(ax, ax.get_legend()) for ax in fig.axes if ax.get_legend() is not None]
    assert legends, "the figure has no legend"
    for ax, legend in legends:
        box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert not box.overlaps(area), f"legend {box} overlaps the data area {area}"


def test_radius_plot_has_one_colour_per_series_and_the_legend_outside(drawn, tmp_path):
    data, radii, analytic = _radius_vs_data(np.random.default_rng(0))
    generators_plots.radius_plot(data, radii, str(tmp_path / "radius_vs_data.png"), analytic=analytic)
    (fig,) = drawn
    ax = fig.axes[0]
    steps = [to_hex(p.get_edgecolor()) for p in ax.patches if not p.get_fill()]
    lines = [to_hex(line.get_color()) for line in ax.get_lines()]
    assert len(steps) == len(lines) == 11
    assert len(set(steps)) == 11 and len(set(lines)) == 11 and steps == lines
    assert steps[: len(BOUNDS)] == plots.series_colours(len(BOUNDS), ordered=True)  # the bound sweep: viridis
    _assert_legend_beside_data(fig)


def test_hit_and_dimension_figures_have_distinct_colours_and_the_legend_outside(drawn, tmp_path):
    rows = [
        dict(bound=b, k=k, log10_analytic=-b * k, mc_hits=int(1e3 * 10 ** (-b * k)), mc_samples=1000)
        for b in BOUNDS
        for k in (1.0, 2.0, 3.0, 12.0)
    ]
    rows = [dict(r, mc_fraction=r["mc_hits"] / 1000) for r in rows]
    generators_plots.hit_fraction_plot(rows, str(tmp_path / "hits.png"))
    scale_rows = [
        {
            "n_points": 2 ** (10 - i),
            **{f"{e}{end}": 3.0 + i + j for e in ("two_nn", "mle") for j, end in enumerate(("_low", "", "_high"))},
        }
        for i in range(4)
    ]
    by_label = {"z-points": scale_rows, "fitted full Gaussian": scale_rows, "true factors": scale_rows}
    intrinsic_dimension.dimension_figure(by_label, 14, str(tmp_path / "dimension.png"))
    hits_fig, dimension_fig = drawn
    for fig, n in ((hits_fig, 4), (dimension_fig, 3)):
        (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        colours = {to_hex(h.get_color()) for h in legend.legend_handles[:n]}
        assert len(colours) == n
        _assert_legend_beside_data(fig)


def test_distribution_legends_are_outside(drawn, tmp_path):
    counts = np.random.default_rng(1).integers(0, 50, (20, 12))
    edges = np.linspace(-2, 2, 21)
    distribution_plots.component_histograms(counts, edges, str(tmp_path / "c.png"), legend=True)
    distribution_plots.histogram(counts[:, 0], edges, str(tmp_path / "h.png"), "x", "t", marker=0.5, marker_label="m")
    distribution_plots.explained_variance(np.array([0.6, 0.3, 0.1]), str(tmp_path / "pca.png"))
    for fig in drawn:
        _assert_legend_beside_data(fig)
    colours = [to_hex(p.get_edgecolor()) for p in drawn[0].axes[0].patches]
    assert len(set(colours)) == 12


@pytest.mark.parametrize("n", [1, 2, 7, 11, 18, 19, 64])
def test_series_colours_are_pairwise_distinct(n):
    for ordered in (False, True):
        assert len(set(plots.series_colours(n, ordered))) == n
    assert "#7f7f7f" not in plots.series_colours(n)  # grey stays free for reference series (the data)


def test_row_labels_wrap_and_the_images_keep_their_width(drawn, tmp_path):
    images = np.random.default_rng(2).uniform(size=(4, 8, 8, 3))
    long_label = "diagonal(std_min=0.124848, std_max=0.213295, mean_abs_max=0.595402)"
    plots.image_rows_png([(long_label, images), ("held-out originals", images)], str(tmp_path / "g.png"))
    (fig,) = drawn
    assert all(len(line) <= plots.LABEL_WIDTH for line in fig.axes[0].get_ylabel().splitlines())
    image_inches = fig.axes[0].get_window_extent().width / fig.dpi
    assert image_inches > 0.8 * 0.9 * 4  # the four tiles keep most of their 0.9 inches beside the label


def test_hit_figure_tells_bounds_from_points_and_names_zero_probabilities(drawn, tmp_path):
    rows = [
        dict(bound=b, k=k, log10_analytic=-math.inf if k == 1 and b < 3 else -b * k, mc_samples=1000)
        for b in BOUNDS
        for k in (1.0, 2.0)
    ]
    rows = [dict(r, mc_hits=int(1e3 * 10 ** r["log10_analytic"]), mc_fraction=0.0) for r in rows]
    rows = [dict(r, mc_fraction=r["mc_hits"] / 1000) for r in rows]
    generators_plots.hit_fraction_plot(rows, str(tmp_path / "hits.png"))
    (fig,) = drawn
    labels = [" ".join(text.get_text().split()) for text in fig.axes[0].get_legend().get_texts()]  # unwrapped
    assert "Monte Carlo fraction (measured point)" in labels
    assert any(label.startswith("no hit in the samples: P < 1/samples (an upper bound") for label in labels)
    assert "k=1: analytic P = 0 (no line on a log axis) at bound 1, 1.5, 2" in labels
    assert not any(label.startswith("k=2: analytic P = 0") for label in labels)
    bound_marks = [line for line in fig.axes[0].get_lines() if line.get_marker() == generators_plots.UPPER_BOUND_MARKER]
    assert bound_marks and all(line.get_linestyle() == "None" for line in bound_marks)
