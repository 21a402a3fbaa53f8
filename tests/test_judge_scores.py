"""The judge evaluator's scores: their sample size, bootstrap intervals and view."""

import types

import jax
import numpy as np
import pytest

from ae_jax.evaluators import judge, registry
from ae_jax.numerics import hits, stats
from ae_jax.runtime import make_key
from ae_jax.train.judge import frechet_distances


def test_bootstrap_interval_covers_the_mean_of_a_skewed_sample_about_95_percent_of_the_time():
    samples = np.random.default_rng(0).exponential(size=(400, 30))  # 400 trials, mean 1
    rows = np.asarray(stats.bootstrap_rows(make_key(0), 30, 500))
    resampled = samples[:, rows].mean(-1)  # (trials, resamples)
    intervals = np.asarray(jax.vmap(stats.bootstrap_interval)(samples.mean(1), resampled))
    coverage = np.mean((intervals[:, 0] <= 1) & (1 <= intervals[:, 1]))
    assert 0.88 < coverage < 0.98


def test_frechet_interval_holds_the_estimate_and_narrows_with_the_sample():
    rng, widths = np.random.default_rng(1), []
    for n in (100, 800):
        a, b = rng.normal(size=(n, 16)), rng.normal(size=(n, 16)) + 0.3
        rows = tuple(stats.bootstrap_rows(make_key(i), n, 100) for i in (0, 1))
        estimate, resampled = frechet_distances(a, [b])[0], frechet_distances(a, [b], rows)[0]
        assert resampled.mean() > estimate  # resampling adds its own sample-size bias ...
        low, high = np.asarray(stats.bootstrap_interval(estimate, resampled, bounds=(0.0, np.inf)))
        assert 0 <= low < estimate < high  # ... which the interval, about the resamples' mean, leaves out
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_knn_scores_are_the_manifold_scores_with_intervals_over_their_own_points():
    rng = np.random.default_rng(2)
    real, generated = rng.normal(size=(300, 5)), rng.normal(size=(200, 5)) * 1.5
    real_radii, gen_radii = stats.knn_distances(real, 3), stats.knn_distances(generated, 3)
    rows_real, rows_set = stats.bootstrap_rows(make_key(0), 300, 50), stats.bootstrap_rows(make_key(1), 200, 50)
    scores = judge.knn_scores(real, real_radii, generated, 3, rows_real, rows_set)
    assert scores["judge_precision"] == pytest.approx(float(hits.manifold_precision(real, real_radii, generated)))
    assert scores["judge_recall"] == pytest.approx(float(hits.manifold_recall(generated, gen_radii, real)))
    assert scores["judge_density"] == pytest.approx(float(hits.density(real, real_radii, generated, 3)))
    assert scores["judge_coverage"] == pytest.approx(float(hits.coverage(real, real_radii, generated)))
    for name in ("judge_precision", "judge_recall", "judge_density", "judge_coverage"):
        assert scores[f"{name}_low"] < scores[name] < scores[f"{name}_high"]


def _scores(judge_images: int, held_out: int = 400):
    rng = np.random.default_rng(3)
    real = rng.random((held_out, 3, 3, 1)).astype(np.float32)
    draws = [(types.SimpleNamespace(label=f"shift {s}"), rng.random((300, 9)) + s, None) for s in (0.2, 1.0)]
    return judge.judge_scores(
        draws,
        judge_images,
        decode=lambda z: np.asarray(z, np.float32).reshape(-1, 3, 3, 1),
        features=lambda images: np.asarray(images).reshape(len(images), -1),
        real_images=real,
        reconstruct=lambda x: x + 0.01,
        k=3,
        resamples=40,
        seed=0,
    )


def test_judge_rows_carry_their_sample_size_and_intervals():
    rows = _scores(100)
    assert [r["label"] for r in rows] == ["shift 0.2", "shift 1.0", "reconstructions", "real vs real"]
    for r in rows:
        assert r["judge_images"] == 100 and r["judge_resamples"] == 40
        for name in ("judge_frechet", "judge_precision", "judge_recall", "judge_density", "judge_coverage"):
            assert r[f"{name}_low"] <= r[name] <= r[f"{name}_high"]
    by = {r["label"]: r for r in rows}
    assert by["shift 1.0"]["judge_frechet_low"] > by["real vs real"]["judge_frechet_high"]
    for name in ("judge_precision", "judge_density", "judge_coverage"):  # shifted away: below the floor
        assert by["shift 1.0"][f"{name}_high"] < by["real vs real"][f"{name}_low"], name


def test_a_small_held_out_split_caps_the_sample_and_says_so(tmp_path):
    draws = [(None, np.zeros((300, 9)), None)]
    assert judge.sample_size(150, 400, draws) == (150, "")
    n, why = judge.sample_size(250, 400, draws)
    assert n == 200 and "asks for 500 held-out images (the split has 400)" in why
    rows = _scores(250)
    assert all(r["judge_images"] == 200 for r in rows)
    numbers = {"rows": rows, "capped": [why]}
    view = judge.view(registry.Result("judge", str(tmp_path), "k" * 64, False, numbers, {}), "m", (1.0,))
    assert view.warnings == [f"m: {why}; FDs compare only at equal n."]
    assert view.rows[0]["judged images"] == 200 and " to " in view.rows[0]["FD 95% interval"]
    for page in ("precision", "recall", "density", "coverage"):
        assert f"judge {page}" in view.rows[0] and " to " in view.rows[0][f"{page} 95% interval"]
    assert "they overlap" not in view.findings[0] and "lies above real vs real's" in view.findings[0]
    assert "recall" in view.findings[1] and "coverage" in view.findings[1] and "vs" in view.findings[1]


def test_too_few_bootstrap_resamples_are_refused():
    from ae_jax import config as C

    with pytest.raises(C.ConfigError, match=r"generators\.judge_resamples"):
        C.load("tiny", ["generators.judge_resamples=5"])
