"""analyze() writes every figure and a summary that finds planted dominant components; load_z validates."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from ae_jax.analyze import _axis_pairs_within, analyze, load_z

PLANTED = {3: (2.0, 0.3), 11: (-1.0, 1.2), 27: (0.0, 2.0)}  # component: (mu, sigma); the rest N(0, 0.3^2)
FAST_TSNE = {"n_iter": 20, "early_exaggeration_iter": 10, "n_jobs": 1}
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
    "summary.json",
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
    summary = analyze(z, str(tmp_path), ids=ids, tsne_points=150, nn_points=300, tsne_kw=FAST_TSNE)

    for name in EXPECTED_FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    for name in summary["figures"]:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) > 200
    assert summary["skipped"] == []

    expected_mu = z.astype(np.float64).mean(0)
    importance = np.maximum(np.abs(expected_mu) / 0.25, np.array(summary["half_width"]) / 1.5)
    assert set(summary["dominant_components"]) == set(PLANTED)
    assert summary["dominant_components"] == sorted(PLANTED, key=lambda j: -importance[j])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["n_points"] == 2000 and on_disk["z_dim"] == 40
    np.testing.assert_allclose(on_disk["mu"], expected_mu, atol=1e-5)
    sigma = np.array([PLANTED.get(j, (0.0, 0.3))[1] for j in range(40)])
    np.testing.assert_allclose(on_disk["half_width"], 2.3548 * sigma, rtol=0.25)  # 2,000 points, bins of 0.25
    assert on_disk["counts"]["mu_abs_ge_0.25"] == np.sum(np.abs(expected_mu) >= 0.25)
    assert on_disk["counts"]["half_width_ge_1.5"] == np.sum(np.array(on_disk["half_width"]) >= 1.5)
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
    pairs, skipped = _axis_pairs_within(30)
    assert pairs == [(1, 18)]
    assert skipped == ["pca_8_35.png: principal axis 35 is beyond z_dim 30"]
    assert _axis_pairs_within(35) == ([(1, 18), (8, 35)], [])


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
        analyze(np.zeros((50, 4), np.float32), str(tmp_path / "out"), ids=["a", "b", "c"])
