"""The vae_latent evaluator: active units, the aggregate posterior's KL to N(0, I) and its Gaussian total
correlation, each against the closed forms in numpy, driven to both sides of what they detect (a latent matched to
its prior with independent components, one strong shared factor), with intervals holding their estimates; and run
end to end on a tiny VAE, whose posterior log-variances it encodes beside the z-points."""

import json
import os

import jax
import numpy as np
import pytest

from ae_jax import config as C
from ae_jax.data import datasets
from ae_jax.evaluators import encode, registry, vae_latent
from ae_jax.numerics import stats
from ae_jax.studies import pipeline


def _closed_forms(mean, log_var, threshold):
    """Float64 numpy: (active units, KL(N(m, S) || N(0, I)), Gaussian total correlation), S = Cov(mean) + E[var]."""
    mean = np.asarray(mean, np.float64)
    cov = np.cov(mean, rowvar=False, ddof=0)
    s = cov + np.diag(np.exp(np.asarray(log_var, np.float64)).mean(0))
    m, logdet = mean.mean(0), np.linalg.slogdet(s)[1]
    kl = 0.5 * (np.trace(s) + m @ m - len(m) - logdet)
    return int((np.diag(cov) > threshold).sum()), kl, 0.5 * (np.log(np.diag(s)).sum() - logdet)


SPREADS = np.array([0.5, 0.3, 0.05, 0.002, 0.001, 0.0005])  # variances of the posterior means: 3 above 0.01


def _matched_to_prior(n=4000):
    """Independent components whose means' variance plus posterior variance is 1: the prior N(0, I) itself."""
    rng = np.random.default_rng(0)
    mean = rng.standard_normal((n, len(SPREADS))) * np.sqrt(SPREADS)
    log_var = np.broadcast_to(np.log1p(-SPREADS), mean.shape)
    return mean.astype(np.float32), np.ascontiguousarray(log_var, np.float32)


def _one_shared_factor(n=4000, d=6):
    """Every component the same factor (plus a little noise), posterior variance 0.01: strongly dependent."""
    rng = np.random.default_rng(1)
    mean = rng.standard_normal((n, 1)) + 0.05 * rng.standard_normal((n, d))
    return mean.astype(np.float32), np.full((n, d), np.log(0.01), np.float32)


def _numbers(mean, log_var, threshold=0.01, resamples=50):
    return vae_latent.latent_numbers(mean, log_var, threshold, resamples, seed=0)


@pytest.mark.parametrize("points", [_matched_to_prior, _one_shared_factor], ids=["matched", "shared_factor"])
def test_the_statistics_are_the_closed_forms_and_their_intervals_hold_them(points):
    mean, log_var = points()
    numbers = _numbers(mean, log_var)
    active, kl, tc = _closed_forms(mean, log_var, 0.01)
    assert numbers["active_units"]["estimate"] == active
    assert numbers["kl_to_prior"]["estimate"] == pytest.approx(kl, rel=1e-4, abs=1e-6)
    assert numbers["total_correlation"]["estimate"] == pytest.approx(tc, rel=1e-4, abs=1e-6)
    for name in vae_latent.STATISTICS:
        record = numbers[name]
        assert record["low"] <= record["estimate"] <= record["high"], (name, record)
    assert numbers["activity"] == pytest.approx(np.var(mean.astype(np.float64), axis=0), rel=1e-4)
    assert numbers["mean_posterior_variance"] == pytest.approx(np.exp(log_var[0]), rel=1e-5)


def test_a_latent_matched_to_its_prior_is_near_it_with_independent_components():
    numbers = _numbers(*_matched_to_prior())
    assert numbers["active_units"] == {"estimate": 3.0, "low": 3.0, "high": 3.0}
    assert numbers["kl_to_prior"]["high"] < 0.02 and numbers["total_correlation"]["high"] < 0.02


def test_one_shared_factor_is_far_from_the_prior_and_strongly_correlated():
    numbers = _numbers(*_one_shared_factor())
    assert numbers["active_units"]["low"] == 6
    assert numbers["kl_to_prior"]["low"] > 5 and numbers["total_correlation"]["low"] > 5


def test_the_threshold_decides_which_units_are_active():
    mean, log_var = _matched_to_prior()
    assert _numbers(mean, log_var, threshold=0.1)["active_units"]["estimate"] == 2  # 0.5 and 0.3 only
    assert _numbers(mean, log_var, threshold=0.0001)["active_units"]["estimate"] == 6


def test_the_bootstrap_interval_narrows_with_more_points():
    mean, log_var = _one_shared_factor(n=4000)
    wide = _numbers(mean[:250], log_var[:250])["total_correlation"]
    narrow = _numbers(mean, log_var)["total_correlation"]
    assert narrow["high"] - narrow["low"] < (wide["high"] - wide["low"]) / 2


def test_log_variances_of_another_shape_are_refused():
    mean, log_var = _matched_to_prior(n=50)
    with pytest.raises(ValueError, match="log_var shaped like the means"):
        stats.aggregate_posterior(jax.random.key(0), mean, log_var[:, :3], 0.01, 4)


def test_a_plain_autoencoder_records_that_it_does_not_apply(tmp_path):
    ctx = registry.RunContext(C.load("tiny"), str(tmp_path))
    numbers, figures = vae_latent.measure(ctx, str(tmp_path))
    assert numbers == {"applicable": False, "reason": "a plain autoencoder: no posterior variances and no prior"}
    assert not figures
    view = vae_latent.view(registry.Result("vae_latent", "", "", False, numbers, {}), "tiny", (2.0,))
    assert view.rows == [{"VAE latent": "not applicable: a plain autoencoder: no posterior variances and no prior"}]
    assert not view.headline and not view.findings


def test_the_evaluator_on_a_tiny_vae_encodes_its_log_variances_and_records_every_statistic(tmp_path):
    config = C.load("tiny_vae_tiny_kl", [f"workdir={tmp_path}/runs", "vae_latent.bootstrap_resamples=20"])
    m = pipeline.study_model(config, str(tmp_path / "out"), ("vae_latent",))
    result = m.results["vae_latent"]
    numbers = result.numbers
    assert numbers["applicable"] and numbers["n_points"] == 96 and numbers["z_dim"] == 4
    assert numbers["method"] == "bootstrap over points, 20 resamples, 95% basic interval"
    for name in vae_latent.STATISTICS:
        assert numbers[name]["low"] <= numbers[name]["estimate"] <= numbers[name]["high"], name
    assert os.path.isfile(result.figures["active_units"])

    z_file = encode.z_path(m.config.run_dir)
    log_var = np.load(encode.log_var_path(z_file))
    assert log_var.shape == np.load(z_file).shape
    run_config, model, params = registry.RunContext(m.config, "", run_dir=m.config.run_dir).run()
    images = datasets.load_split(run_config.data, "train", run_config.seed).images[:8]
    expected = model.apply({"params": params}, datasets.to_unit(images), method=lambda mod, x: mod.encoder(x)[1])
    np.testing.assert_allclose(log_var[:8], np.asarray(expected), rtol=1e-5, atol=1e-5)
    record = json.load(open(encode.record_path(encode.log_var_path(z_file))))
    assert record["inputs"]["statistic"] == "log_var"

    again = pipeline.study_model(config, str(tmp_path / "out"), ("vae_latent",))
    assert again.results["vae_latent"].reused and again.results["vae_latent"].numbers == numbers
