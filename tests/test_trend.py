"""The training-trend study: its rule on synthetic trends driven to each outcome, the fit against a hand
computation, and the smoke study end to end (page, tables, figure, verdict, reuse, a size the data lacks)."""

import json
import math
import os

import numpy as np
import page_sections
import pytest
import smoke_study
from PIL import Image
from scipy import stats as scipy_stats

from ae_jax.data import datasets
from ae_jax.studies import catalogue, results_md, trend
from ae_jax.studies.catalogue import run_study

GRID = np.geomspace(1e3, 1e5, 8)  # presentations of a synthetic grid


def _power_law(scale: float, slope: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """scale * (P / 1e3) ** slope over GRID, times exp(noise * N(0, 1))."""
    jitter = np.exp(noise * np.random.default_rng(seed).standard_normal(len(GRID)))
    return scale * (GRID / 1e3) ** slope * jitter


def test_the_fit_is_least_squares_in_log_log_with_a_student_t_interval_on_its_slope():
    values = _power_law(10, -0.4, noise=0.05)
    t = trend.fit(GRID, values)
    reference = scipy_stats.linregress(np.log10(GRID), np.log10(values))
    assert t.slope == pytest.approx(reference.slope, rel=1e-4)
    half = scipy_stats.t.ppf(0.975, len(GRID) - 2) * reference.stderr
    assert t.slope_interval == pytest.approx((reference.slope - half, reference.slope + half), rel=1e-3)
    centre, low, high = t.band(GRID)
    np.testing.assert_allclose(centre, 10 ** (reference.intercept + reference.slope * np.log10(GRID)), rtol=1e-4)
    widths = np.log10(high) - np.log10(low)  # narrowest at the centroid, wider at both ends
    assert np.all(low < centre) and np.all(centre < high) and widths.argmin() in (3, 4) and widths[0] > widths[3]


def test_reached_gives_the_presentations_and_their_interval():
    verdict = trend.decide(trend.fit(GRID, _power_law(10, -0.4, noise=0.05)), 1.0, GRID.max())
    assert verdict.outcome == trend.REACHED
    assert verdict.presentations == pytest.approx(1e3 * 10 ** (1 / 0.4), rel=0.3)  # 3.2e5, within 10x of 1e5
    assert verdict.interval[0] < verdict.presentations < verdict.interval[1]
    t = trend.fit(GRID, _power_law(10, -0.4, noise=0.05))
    low, high = t.band(np.array(verdict.interval))[1:]  # the band's lower edge reaches 1 first, its upper edge last
    assert low[0] == pytest.approx(1.0, rel=1e-3) and high[1] == pytest.approx(1.0, rel=1e-3)


def test_a_crossing_more_than_ten_times_past_the_grid_flattens_before_it():
    verdict = trend.decide(trend.fit(GRID, _power_law(10, -0.2, noise=0.01)), 1.0, GRID.max())
    assert verdict.outcome == trend.FLATTENS and "more than 10x past the grid" in verdict.reason
    assert verdict.presentations == pytest.approx(1e3 * 10 ** (1 / 0.2), rel=0.3)  # 1e8: 1,000x past it


def test_a_slope_whose_interval_includes_zero_flattens_before_it():
    verdict = trend.decide(trend.fit(GRID, _power_law(3, -0.02, noise=0.3)), 1.0, GRID.max())
    assert verdict.outcome == trend.FLATTENS and "includes 0" in verdict.reason and verdict.presentations is None


def test_a_quantity_growing_with_training_is_not_reached():
    verdict = trend.decide(trend.fit(GRID, _power_law(3, 0.3, noise=0.05)), 1.0, GRID.max())
    assert verdict.outcome == trend.NOT_REACHED and verdict.presentations is None


def test_a_quantity_already_within_the_bound_at_the_grids_end_is_reached():
    zero = trend.decide(trend.fit(GRID, np.zeros(len(GRID)), offset=1.0), 0.3, GRID.max())
    assert zero.outcome == trend.REACHED and zero.presentations is None and "within 0.3" in zero.reason
    falling = trend.decide(trend.fit(GRID, _power_law(3, -0.4, noise=0.02)), 1.0, GRID.max())
    assert falling.outcome == trend.REACHED and GRID[2] < falling.presentations < GRID[-1]  # 1e3 * 3^2.5 = 1.6e4


def test_too_few_points_are_not_fitted():
    assert trend.fit(GRID[:2], [3.0, 2.0]) is None and trend.fit([1e3] * 4, [3.0, 2.0, 2.5, 2.2]) is None
    assert trend.decide(None, 1.0, 1e5).outcome == trend.NOT_FITTED


def test_a_count_that_reaches_zero_is_fitted_with_its_offset():
    counts = [200, 120, 60, 30, 12, 5, 1, 0]
    t = trend.fit(GRID, counts, offset=1.0)
    verdict = trend.decide(t, 5.0, GRID.max())
    assert math.isfinite(t.slope) and verdict.outcome == trend.REACHED and GRID[3] < verdict.presentations < GRID[6]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("trend"))
    return out, os.path.join(smoke_study.run_and_check("training_trend", out), "index.html")


def test_the_smoke_study_has_the_table_figure_and_verdict(smoke):
    out, page = smoke
    html = open(page).read()
    assert "The author&#x27;s regime (median FWHM &lt;= 1):" in html  # the verdict leads its section
    assert "<th>presentations</th>" in html and "<th>slope per decade</th>" in html and "<th>verdict</th>" in html
    assert "the quantities against image presentations" in html and '<img src="data:image/png;base64,' in html
    folder = os.path.dirname(page)
    assert os.path.isfile(os.path.join(folder, "training_trend.png"))
    tables = json.load(open(os.path.join(folder, "results.json")))["tables"]
    points, fits = tables["training_trend"], tables["training_trend_fits"]
    assert [(p["data.num_images"], p["epochs"]) for p in points] == [(48, 1), (48, 2), (96, 1), (96, 2)]
    assert [p["presentations"] for p in points] == [48, 96, 96, 192]  # 3 and 6 batches of 16 per epoch
    assert all(
        p["variance share, 2 widest coordinate axes"] <= p["variance share, 2 first principal axes"] + 1e-6
        for p in points
    )
    assert [f["quantity"] for f in fits] == ["median FWHM", "FWHM >= 1", "FWHM >= 1.5", "FWHM >= 3", "|mu| >= 0.25"]
    assert all(f["verdict"] in (trend.REACHED, trend.NOT_REACHED, trend.FLATTENS) for f in fits)
    assert os.path.isfile(os.path.join(folder, "training_trend.csv"))


def test_a_grid_point_already_trained_is_reused_and_the_log_says_so(smoke, log_messages):
    out, _ = smoke
    run_study("training_trend", full=False, out_dir=out)
    reused = [m for m in log_messages if "trend_" in m and ": reused (trained for" in m]
    assert len(reused) == 4 and not any(": training (training key" in m for m in log_messages), reused


def test_a_training_set_larger_than_the_data_holds_is_refused_before_any_training(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(30):
        Image.fromarray(np.full((20, 20, 3), 8 * i, np.uint8)).save(folder / f"{i:02d}.png")
    found = len(datasets._image_split_files(datasets.DataConfig(name="images", dir=str(folder)), "train")[1])
    settings = dict(catalogue.STUDIES["training_trend"].smoke, images=(16, 1000))
    overrides = ["data.name=images", f"data.dir={folder}", f"workdir={tmp_path / 'runs'}"]
    with pytest.raises(datasets.DataError, match=f"data.num_images=1,000 exceeds the {found} training images found"):
        catalogue.training_trend(settings, str(tmp_path / "out"), overrides)
    assert not os.path.exists(tmp_path / "runs")


def test_results_md_rewrites_only_the_trend_section_and_its_figure(smoke, tmp_path):
    out, _ = smoke
    page, figures = tmp_path / "results.md", tmp_path / "figures"
    figures.mkdir()
    (figures / "tiny_components_all.png").write_bytes(b"another section's figure")
    lines = page_sections.rewrite_twice(out, page, "trend")
    start = lines.index(results_md.TREND_HEADING)
    fits = json.load(open(os.path.join(out, "training_trend-smoke", "results.json")))["tables"]
    assert lines[start + 4] == f"**{trend.headline_text(fits['training_trend_fits'][0])}**"
    assert "![trend: training_trend.png](figures/trend_training_trend.png)" in lines
    assert sorted(os.listdir(figures)) == ["tiny_components_all.png", "trend_training_trend.png"]
