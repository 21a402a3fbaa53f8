"""The distribution evaluator's evidence for the posts' claims: z-points built so that each claim comes out
supported in one case and refuted in another, the grouped bootstrap's totals and spread, and the evaluator run end
to end recording every one of its claims with an interval that holds the estimate."""

import json
import math

import jax
import numpy as np
import pytest

from ae_jax import config as C
from ae_jax.evaluators import distribution, registry
from ae_jax.evaluators.evidence import COUNT_THRESHOLDS, Evidence, count_claim_id
from ae_jax.numerics import stats
from ae_jax.studies import claims

N, D = 2000, 40
CFG = C.load(
    "tiny",
    [
        "distribution.bin_width=0.05",
        "distribution.hist_range=-40,40",  # one range: each case compiles only its radius histograms
        "distribution.bootstrap_groups=100",
        "distribution.bootstrap_resamples=50",
        "distribution.null_draws=3",
    ],
).distribution
RAW_COUNTS = [count_claim_id(key, False) for key, _, _ in COUNT_THRESHOLDS]
MU_SCALED = [count_claim_id(key, True) for key, what, _ in COUNT_THRESHOLDS if what == "|mu|"]
FWHM_SCALED = [count_claim_id(key, True) for key, what, _ in COUNT_THRESHOLDS if what == "FWHM"]


def _gaussian(mu=0.0, sigma=1.0, seed=0):
    """Independent Gaussian columns; mu and sigma: scalars or one per component."""
    rng = np.random.default_rng(seed)
    return (mu + sigma * rng.standard_normal((N, D))).astype(np.float32)


def _with_first(value: float, k: int, rest: float) -> np.ndarray:
    return np.where(np.arange(D) < k, value, rest)


# Each case: z-points, and the outcome each named claim must get on them.
CASES = {
    "independent": (
        lambda: _gaussian(),
        {"gaussian_components": "supported", "radius_from_components": "supported", "pca_few_axes": "refuted"},
    ),
    "one shared factor": (  # every component 3 f + noise: one principal axis, a radius spread far past independence
        lambda: (3 * _gaussian(seed=1)[:, :1] + _gaussian(sigma=0.5)).astype(np.float32),
        {"pca_few_axes": "supported", "radius_from_components": "refuted"},
    ),
    "uniform columns": (  # FWHM = width = sqrt(12) std: 1.47 times a Gaussian's
        lambda: np.random.default_rng(2).uniform(-3, 3, (N, D)).astype(np.float32),
        {"gaussian_components": "refuted"},
    ),
    "narrow": (  # |mu| 0 and FWHM 0.24: under every threshold of the posts' units
        lambda: _gaussian(sigma=0.1),
        {**dict.fromkeys(RAW_COUNTS, "supported"), **dict.fromkeys(MU_SCALED, "supported")},
    ),
    "wide": (  # |mu| 2 and FWHM 4.7 in every component: past every threshold of the posts' units
        lambda: _gaussian(mu=2.0, sigma=2.0),
        dict.fromkeys(RAW_COUNTS, "refuted"),
    ),
    "four far means": (  # four components at mean 10 make the radius (and so the scale): their means count
        lambda: _gaussian(mu=_with_first(10.0, 4, 0.0), sigma=0.5),
        {
            "centre_on_few_axes": "supported",
            **dict.fromkeys(MU_SCALED, "refuted"),
            **dict.fromkeys(FWHM_SCALED, "supported"),
        },
    ),
    "equal means": (
        lambda: _gaussian(mu=1.0),
        {"centre_on_few_axes": "refuted", "few_dominant_axes": "supported"},
    ),
    "a third wide": (  # 12 of 40 components 5x wider than the rest: past 3x the median FWHM, and the scale's 3x
        lambda: _gaussian(sigma=_with_first(5.0, 12, 1.0)),
        {"few_dominant_axes": "refuted", **dict.fromkeys(FWHM_SCALED, "refuted")},
    ),
}


@pytest.fixture(scope="module")
def outcomes():
    """Each case's evidence (claim id -> Evidence)."""
    found = {}
    for name, (make, _) in CASES.items():
        z = make()
        comp = jax.device_get(distribution.components(z, CFG))
        found[name] = {k: Evidence.of(v) for k, v in distribution.claim_evidence(z, comp, CFG)["evidence"].items()}
    return found


def test_every_claim_of_the_evaluator_is_driven_to_supported_and_refuted():
    mine = {c.id for c in claims.CLAIMS if c.evaluator == "distribution"}
    reached = {
        outcome: {i for _, want in CASES.values() for i, o in want.items() if o == outcome}
        for outcome in ("supported", "refuted")
    }
    assert reached["supported"] == mine and reached["refuted"] == mine


@pytest.mark.parametrize("case", CASES)
def test_each_case_gets_its_outcomes(case, outcomes):
    evidence = outcomes[case]
    got = {i: claims.claim(i).rule(evidence[i]) for i in CASES[case][1]}
    assert got == CASES[case][1], {i: (evidence[i].estimate, evidence[i].interval, evidence[i].null) for i in got}
    for e in evidence.values():
        assert e.interval[0] <= e.estimate <= e.interval[1] and e.n == N


def test_the_estimates_are_the_statistics_the_claims_name(outcomes):
    shared = outcomes["one shared factor"]["radius_from_components"]
    independent = outcomes["independent"]
    assert shared.null_name.startswith("column-shuffled") and shared.estimate > 3 * shared.null
    assert shared.null_interval[0] <= shared.null <= shared.null_interval[1]
    assert independent["pca_few_axes"].estimate > 0.9 and outcomes["one shared factor"]["pca_few_axes"].estimate < 0.05
    assert independent["gaussian_components"].estimate == pytest.approx(1.0, abs=0.1)
    assert outcomes["uniform columns"]["gaussian_components"].estimate == pytest.approx(math.sqrt(12) / 2.3548, rel=0.1)
    far = outcomes["four far means"]
    assert far["count_mu_ge_1_scaled"].estimate == far["count_mu_ge_1"].estimate == pytest.approx(4 * 256 / D)
    assert "counts x 256/40" in far["count_mu_ge_1"].method and "re-measured" in far["count_mu_ge_1_scaled"].method


def test_group_totals_add_up_to_the_data_and_resample_with_the_spread_of_a_mean():
    z = _gaussian(mu=_with_first(3.0, 2, 0.0), seed=3)
    groups, real = stats.random_groups(jax.random.key(0), z, 300)  # 2000 rows: groups of 7, some padded
    assert groups.shape == (300, 7, D) and int(real.sum()) == N and int(real.sum(axis=1).min()) == 6
    centre = z.mean(axis=0)
    totals = stats.weighted_total(stats.group_sums(groups, real, centre), np.ones(300, np.float32))
    mean, var, cov = stats.moments_of_sums(totals, centre)
    np.testing.assert_allclose(mean, z.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(var, z.var(axis=0), rtol=1e-4)
    np.testing.assert_allclose(cov, np.cov(z.T), atol=1e-4)
    counts = stats.weighted_total(stats.group_histograms(groups, real, 0.25, -5.0, 8.0), np.ones(300, np.float32))
    np.testing.assert_array_equal(counts, stats.component_histograms(z, 0.25, -5.0, 8.0))
    weights = stats.group_weights(jax.random.key(1), 300, 400)
    assert weights.shape == (400, 300) and np.all(weights.sum(axis=1) == 300)
    sums = stats.group_sums(groups, real, centre)
    means = jax.vmap(lambda w: stats.moments_of_sums(stats.weighted_total(sums, w), centre)[0])(weights)
    np.testing.assert_allclose(np.std(means, axis=0).mean(), 1 / math.sqrt(N), rtol=0.15)


def test_spectrum_and_centre_statistics():
    summary = stats.spectrum_summary(np.array([6.0, 2.0, 1.0, 1.0]))
    assert summary["participation_ratio"] == pytest.approx(100 / 42)
    assert summary["first_axis_share"] == pytest.approx(0.6)
    assert [int(summary["axes_for"][s]) for s in (0.5, 0.9)] == [1, 3]
    share, distance = stats.top_squares(np.array([0.0, -3.0, 1.0, 4.0]), 2)
    assert share == pytest.approx(25 / 26) and distance == pytest.approx(1.0)
    assert stats.share_beyond_median(np.array([1.0, 1.0, 1.0, 4.0]), np.ones(4), 3.0) == pytest.approx(0.25)


def test_the_evaluator_records_every_claim_and_the_view_says_what_it_found(tmp_path):
    z = _gaussian(sigma=_with_first(2.0, 3, 0.5), seed=4)[:300, :8]
    np.save(tmp_path / "z.npy", z)
    config = C.load("tiny", ["distribution.bootstrap_resamples=20", "distribution.null_draws=2"])
    ctx = registry.RunContext(config, str(tmp_path / "out"), z_file=str(tmp_path / "z.npy"))
    result = registry.run(ctx, ["distribution"])["distribution"]
    recorded = json.loads(json.dumps(result.numbers["evidence"]))
    assert set(recorded) == {c.id for c in claims.CLAIMS if c.evaluator == "distribution"}
    for claim_id, record in recorded.items():
        e = Evidence.of(record)
        assert e.interval[0] <= e.estimate <= e.interval[1] and e.n == 300, claim_id
        assert claims.claim(claim_id).rule(e) in claims.OUTCOMES[:3] and "20 resamples" in e.method
        assert ("counts x 256/8" in e.method) == claim_id.startswith("count_")
    pca = result.numbers["pca_spectrum"]
    for name in ("participation_ratio", "first_axis_share", "axes_for_50%", "axes_for_90%"):
        low, high = pca[name]["interval"]
        assert low <= pca[name]["estimate"] <= high, name
    assert pca["axes_for_50%"]["estimate"] <= pca["axes_for_90%"]["estimate"] <= 8
    centre = result.numbers["centre"]
    assert centre["top_axes"] == 1 and centre["distance_from_top_axes"]["estimate"] >= 0
    spread = result.numbers["radius_spread"]
    assert spread["correlation_share"]["interval"][0] <= spread["correlation_share"]["estimate"] <= 1
    findings = registry.EVALUATORS["distribution"].view(result, "toy", ()).findings
    assert any("comes from correlation between components" in f for f in findings)
    assert any("first principal axis holds" in f and "participation ratio" in f for f in findings)


@pytest.mark.parametrize(
    "setting",
    ["bootstrap_groups=1", "bootstrap_resamples=1", "null_draws=0", "interval_level=1", "interval_level=0"],
)
def test_settings_that_leave_no_interval_are_refused_at_load(setting):
    with pytest.raises(C.ConfigError, match=f"distribution.{setting.split('=')[0]}"):
        C.load("tiny", [f"distribution.{setting}"])
