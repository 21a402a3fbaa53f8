"""analyze() writes every figure and a summary that finds planted dominant components; the histogram range
comes from the data (or is fixed, and then the share it cuts is reported); load_z validates."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from ae_jax import config as C
from ae_jax.cli import main
from ae_jax.config import DistributionConfig
from ae_jax.evaluators import distribution
from ae_jax.evaluators.distribution import analyze, axis_pairs_within, components
from ae_jax.evaluators.encode import load_z
from ae_jax.numerics import stats

PLANTED = {3: (2.0, 0.3), 11: (-1.0, 1.2), 27: (0.0, 2.0)}  # component: (mu, sigma); the rest N(0, 0.3^2)
FAST = C.load(
    "tiny",
    [
        "distribution.tsne=true",
        "distribution.tsne_points=150",
        "distribution.nn_points=300",
        "distribution.zoom_units=absolute",
        "distribution.zoom_half_sides=10,2.5,1,0.5,0.25",
    ],
).distribution
EXPECTED_FILES = [
    "components_all.png",
    "components_dominant.png",
    "radius_hist_0.5.png",
    "radius_hist_0.05.png",
    "correlation.png",
    "dominant_pair_scatter.png",
    "pca_explained_variance.png",
    "pca_1_18.png",
    "pca_8_35.png",
    "original_axes_dominant.png",
    "nn_distance_hist.png",
    "tsne_raw.png",
    "tsne_pca2.png",
    "tsne_pca4.png",
    "tsne_pca10.png",
    "dominant_components.csv",
    "tsne_embeddings.npz",
] + [f"pca_1_2_zoom_{h}.png" for h in ("10", "2.5", "1", "0.5", "0.25")]


def planted_z(n: int = 2000, d: int = 40, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32) * 0.3
    for j, (mu, sigma) in PLANTED.items():
        z[:, j] = z[:, j] / 0.3 * sigma + mu
    return z


def test_analyze_writes_every_file_and_finds_the_planted_components(tmp_path):
    z = planted_z()
    ids = [f"img_{i:05d}.jpg" for i in range(len(z))]
    summary = analyze(z, str(tmp_path), FAST, ids=ids)

    for name in EXPECTED_FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    for name in summary["figures"]:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) > 200
    assert summary["skipped"] == []

    expected_mu = z.astype(np.float64).mean(0)
    importance = np.maximum(np.abs(expected_mu) / 0.25, np.array(summary["fwhm"]) / 1.5)
    assert set(summary["dominant_components"]) == set(PLANTED)
    assert summary["dominant_components"] == sorted(PLANTED, key=lambda j: -importance[j])
    on_disk = json.loads(json.dumps(summary))  # JSON-ready
    assert on_disk["n_points"] == 2000 and on_disk["z_dim"] == 40
    np.testing.assert_allclose(on_disk["mu"], expected_mu, atol=1e-5)
    sigma = np.array([PLANTED.get(j, (0.0, 0.3))[1] for j in range(40)])
    np.testing.assert_allclose(on_disk["fwhm"], 2.3548 * sigma, rtol=0.25)  # 2,000 points, bins of 0.25
    assert on_disk["counts"]["mu_abs_ge_0.25"] == np.sum(np.abs(expected_mu) >= 0.25)
    assert on_disk["counts"]["fwhm_ge_1.5"] == np.sum(np.array(on_disk["fwhm"]) >= 1.5)
    assert on_disk["counts"]["value_range"] == [float(z.min()), float(z.max())]
    r = np.linalg.norm(z, axis=1)
    assert abs(on_disk["radius"]["mean"] - r.mean()) < 1e-4
    assert on_disk["radius_outliers"][0] == {
        "row": int(np.argmax(r)),
        "id": ids[int(np.argmax(r))],
        "radius": pytest.approx(float(r.max()), rel=1e-6),
    }
    assert abs(sum(on_disk["pca_explained_variance_ratio"]) - 1) < 1e-5

    with open(tmp_path / "dominant_components.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["index"]) for row in rows] == summary["dominant_components"]
    np.testing.assert_allclose(
        [float(row["mu"]) for row in rows], expected_mu[summary["dominant_components"]], rtol=1e-4, atol=1e-5
    )

    embeddings = np.load(tmp_path / "tsne_embeddings.npz")
    assert embeddings["tsne_raw"].shape == (150, 2) and list(embeddings["ids"][:1]) == [ids[embeddings["rows"][0]]]


def test_axis_pairs_beyond_z_dim_are_skipped_with_a_message():
    pairs, skipped = axis_pairs_within(((1, 18), (8, 35)), 30)
    assert pairs == [(1, 18)]
    assert skipped == ["pca_8_35.png: principal axis 35 is beyond z_dim 30"]
    assert axis_pairs_within(((1, 18), (8, 35)), 35) == ([(1, 18), (8, 35)], [])


def _two_scales(n=20_000, seed=0):
    """Component 0 ~ N(0, 12^2), component 1 ~ N(15, 0.5^2): one far wider, one far off-centre."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(0, 12, n), rng.normal(15, 0.5, n)], axis=1).astype(np.float32)


def test_default_range_counts_every_value_and_recovers_both_fwhms(tmp_path):
    z = _two_scales()
    summary = analyze(z, str(tmp_path), C.load("tiny").distribution)
    h = summary["histogram"]
    assert h["from_data"] and h["points_outside"] == [0, 0] and h["cut_share"] == 0
    assert h["lo"] <= z.min() and h["hi"] >= z.max() and (h["hi"] - h["lo"]) / 0.25 == round((h["hi"] - h["lo"]) / 0.25)
    fwhm = 2 * np.sqrt(2 * np.log(2))
    np.testing.assert_allclose(summary["fwhm"], [fwhm * 12, fwhm * 0.5], rtol=0.05)


def test_fixed_range_that_cuts_values_warns_naming_components_and_share(tmp_path, log_messages):
    z = _two_scales()
    cfg = C.load("tiny", ["distribution.hist_range=-12,12"]).distribution
    summary = analyze(z, str(tmp_path), cfg)
    h = summary["histogram"]
    outside = np.sum((z < -12) | (z > 12), axis=0)
    assert h["points_outside"] == outside.tolist() and outside[1] == len(z)
    assert h["cut_share"] == pytest.approx(outside.sum() / z.size)
    assert set(h["cut_components"]) == {0, 1}
    warning = next(m for m in log_messages if m.startswith("warning: distribution.hist_range=(-12.0, 12.0)"))
    assert f"cuts {h['cut_share']:.3g} of all values" in warning and "in 2 components: 0 (" in warning


def test_zoom_windows_in_std_units_hold_points_at_any_scale(tmp_path):
    z = _two_scales() * 1e-3  # a tiny latent scale: absolute windows of 0.25 would hold every point
    relative = analyze(z, str(tmp_path / "std"), C.load("tiny", ["distribution.zoom_half_sides=0.5,0.1"]).distribution)
    assert [w["half_side"] for w in relative["pca_zoom"]] == [0.5, 0.1]
    assert all(0 < w["points"] < len(z) for w in relative["pca_zoom"])
    assert relative["pca_zoom"][0]["points"] > relative["pca_zoom"][1]["points"]
    assert relative["pca_zoom"][0]["half_x"] == pytest.approx(0.5 * 12e-3, rel=0.05)  # PC 1 is component 0
    absolute = C.load("tiny", ["distribution.zoom_units=absolute", "distribution.zoom_half_sides=0.25"]).distribution
    assert analyze(z, str(tmp_path / "abs"), absolute)["pca_zoom"][0]["points"] == len(z)


def test_load_z_round_trip_and_refusals(tmp_path):
    z = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    path = tmp_path / "z.npy"
    np.save(path, z)
    loaded = load_z(str(path))
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, z)

    z[17, 2] = np.nan
    np.save(path, z)
    with pytest.raises(ValueError, match=r"z\.npy has 1 of 50 rows with NaN or Inf; the first is row 17"):
        load_z(str(path))
    np.save(path, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"shape \(N points, D components\)"):
        load_z(str(path))
    np.save(path, np.zeros((5, 2), np.int64))
    with pytest.raises(ValueError, match="floating point"):
        load_z(str(path))
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_z(str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match="ids has 3 entries but z has 50 rows"):
        analyze(np.zeros((50, 4), np.float32), str(tmp_path / "out"), FAST, ids=["a", "b", "c"])


def test_one_diverged_value_is_refused_before_any_histogram_naming_component_row_and_value(tmp_path, capsys):
    z = np.random.default_rng(0).normal(size=(5000, 16)).astype(np.float32)
    z[1234, 7] = 1e6  # the reproduction: a data-decided range of 4,000,018 bins of 0.25
    np.save(tmp_path / "z.npy", z)
    assert main(["analyze", "--z", str(tmp_path / "z.npy"), "--out", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "component 7, row 1234 holds 1e+06" in error and "4,000,018 bins of 0.25" in error
    keys = ("distribution.bin_width", "distribution.hist_range", "distribution.max_hist_bins")
    assert all(key in error for key in keys)
    assert not (tmp_path / "a" / "components_all.png").exists()


def test_a_diverged_low_value_is_named_and_a_range_within_max_hist_bins_is_unchanged():
    z = _two_scales()
    z[17, 1] = -400.0
    cfg = C.load("tiny", ["distribution.max_hist_bins=1000"]).distribution
    with pytest.raises(ValueError, match=r"component 1, row 17 holds -400 .* past distribution\.max_hist_bins=1,000"):
        components(z, cfg)
    wide = components(z, C.load("tiny").distribution)  # the default max_hist_bins reaches -400
    assert wide["lo"] == -400.0 and np.asarray(wide["counts"]).shape == (round((wide["hi"] + 400) / 0.25), 2)


def test_a_fixed_range_past_max_hist_bins_is_refused_at_load():
    with pytest.raises(C.ConfigError, match=r"distribution\.hist_range: \(-12\.0, 12\.0\) holds 96 bins"):
        C.load("tiny", ["distribution.hist_range=-12,12", "distribution.max_hist_bins=95"])
    cfg = C.load("tiny", ["distribution.hist_range=-12,12", "distribution.max_hist_bins=96"]).distribution
    assert cfg.max_hist_bins == 96


def test_a_diverged_value_under_a_fixed_range_is_refused_at_the_radius_histograms(tmp_path):
    z = _two_scales(n=2000)
    z[5, 0] = 1e6  # cut by the fixed component range, but its radius would need 2e7 bins of 0.05
    cfg = C.load("tiny", ["distribution.hist_range=-100,100"]).distribution
    with pytest.raises(ValueError, match=r"row 5 has radius 1e\+06 \(component 0 holds 1e\+06\).*radius_bin_widths"):
        analyze(z, str(tmp_path), cfg)
    assert not (tmp_path / "radius_hist_0.05.png").exists()


def test_bin_limited_components_are_named_with_the_bin_width_that_resolves_them():
    """sigma 0.05 at bin width 0.25 reads about 4x too wide: flagged, with a bin width that reads it right; the
    resolved components (sigma 0.5, 1) and a bin width that resolves all give no flag."""
    rng = np.random.default_rng(0)
    sigma = np.array([0.05, 0.05, 0.5, 1.0])
    z = (rng.normal(size=(20_000, 4)) * sigma).astype(np.float32)
    coarse = distribution.components(z, DistributionConfig(bin_width=0.25))
    limited = distribution.bin_limited(coarse["fwhm"], coarse["std"], 0.25)
    assert limited["components"] == [0, 1]
    fine = distribution.components(z, DistributionConfig(bin_width=limited["bin_width_to_use"]))
    ratio = np.asarray(fine["fwhm"]) / (stats.GAUSSIAN_FWHM_PER_STD * sigma)
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    assert distribution.bin_limited(fine["fwhm"], fine["std"], limited["bin_width_to_use"])["components"] == []
    constant = distribution.bin_limited([0.0, 2.0], [0.0, 1.0], 0.25)
    assert constant == {"components": [0], "bin_width_to_use": None}
