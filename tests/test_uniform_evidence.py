"""Post II's uniform grid and the uniform claims' evidence (generators evaluator): every uniform claim and the
radius law driven to each outcome, and the evaluator recording them all with intervals that hold the estimate."""

import os

import jax
import numpy as np
import pytest

from ae_jax import config as C
from ae_jax.evaluators import distribution, generators, registry
from ae_jax.evaluators.evidence import AUTHOR_UNIFORM_POINTS, UNIFORM_SETTINGS, Evidence, uniform_claim_id
from ae_jax.studies import claims

KEY = jax.random.PRNGKey(0)
UNIFORM_IDS = [uniform_claim_id(b, k, scaled) for b, k in UNIFORM_SETTINGS for scaled in (False, True)]


def _evidence_of_cloud(tmp_path, centre: float, spread: float, n: int = AUTHOR_UNIFORM_POINTS) -> dict:
    """The grid's evidence in the data box of 2,000 Gaussian z-points (4 components) about `centre`."""
    z = centre + spread * np.random.default_rng(0).normal(size=(2000, 4)).astype(np.float32)
    cfg = C.load("tiny", [f"generators.author_grid_n={n}"])
    comp = jax.device_get(distribution.components(z, cfg.distribution))
    numbers, figures = generators.measure_grid(z, comp, cfg, str(tmp_path))
    assert os.path.isfile(figures["author_grid"]) and os.path.isfile(tmp_path / "author_grid.csv")
    return numbers["evidence"]


def _outcome(claim_id: str, evidence: dict) -> str:
    return claims.claim(claim_id).rule(Evidence.of(evidence[claim_id]))


def test_a_box_far_from_every_uniform_box_supports_the_zero_hit_claims_and_refutes_the_full_ones(tmp_path):
    evidence = _evidence_of_cloud(tmp_path, centre=1000.0, spread=1.0)  # the data far outside [-12 x scale, ...]
    for claim_id in UNIFORM_IDS:
        e = Evidence.of(evidence[claim_id])
        assert e.estimate == 0 and e.interval[0] == 0 < e.interval[1] and e.n == AUTHOR_UNIFORM_POINTS
        expected = claims.SUPPORTED if claims.claim(claim_id).rule.kind == "at_most" else claims.REFUTED
        assert _outcome(claim_id, evidence) == expected, claim_id


def test_a_box_around_every_uniform_box_refutes_the_zero_hit_claims_and_supports_the_full_ones(tmp_path):
    evidence = _evidence_of_cloud(tmp_path, centre=0.0, spread=500.0)  # FWHM ~ 1,200: every box inside
    for claim_id in UNIFORM_IDS:
        assert Evidence.of(evidence[claim_id]).estimate == 1
        expected = claims.REFUTED if claims.claim(claim_id).rule.kind == "at_most" else claims.SUPPORTED
        assert _outcome(claim_id, evidence) == expected, claim_id


def test_too_few_points_leave_a_zero_hit_claim_inconclusive(tmp_path):
    evidence = _evidence_of_cloud(tmp_path, centre=1000.0, spread=1.0, n=1000)  # 0 of 1,000: P < 0.4% only
    assert _outcome(uniform_claim_id(2.0, 2.0, False), evidence) == claims.INCONCLUSIVE
    assert _outcome(uniform_claim_id(1.0, 1.5, False), evidence) == claims.REFUTED


@pytest.mark.parametrize("z_dim, outcome", [(256, claims.SUPPORTED), (1, claims.REFUTED)])
def test_the_radius_law_holds_in_many_dimensions_and_fails_in_one(z_dim, outcome):
    """In 1-D |z| of U[-1, 1] has mean 1/2, the formula 0.516; in 256 dimensions they agree to 1e-4."""
    grid = generators.author_grid(np.zeros(z_dim), np.ones(z_dim), 1.0, 20_000, KEY)
    law = grid["radius_law"]
    assert law["ratio_low"] < law["ratio"] < law["ratio_high"]
    evidence = generators.grid_evidence(grid)
    assert _outcome("uniform_radius_law", evidence) == outcome
    if z_dim == 1:
        assert law["ratio"] == pytest.approx(0.5 / generators.radius_law(1.0, 1), abs=0.01)


def test_scaled_bounds_are_the_absolute_ones_times_the_scale():
    mu, fwhm = np.zeros(3), np.full(3, 0.5)  # box [-k/2, k/2]: b <= k/2 is wholly inside
    grid = generators.author_grid(mu, fwhm, 2.0, 5000, KEY)
    for r in grid["rows"]:
        factor = 2.0 if r["units"] == "scaled" else 1.0
        assert r["bound"] == pytest.approx(r["b"] * factor)
        assert r["low"] <= r["share"] <= r["high"]
        if r["bound"] <= r["k"] / 2:
            assert r["hits"] == r["n"] == 5000
    assert generators.grid_row(grid, 1.0, 2.0, "absolute")["hits"] == 5000  # [-1, 1]^3 in the box [-1, 1]^3
    scaled = generators.grid_row(grid, 1.0, 2.0, "scaled")  # [-2, 2]^3: (1/2)^3 of it inside
    assert scaled["low"] < 1 / 8 < scaled["high"] and scaled["log10_analytic"] == pytest.approx(np.log10(1 / 8))
    assert {(b, k) for b, k in UNIFORM_SETTINGS} <= {(r["b"], r["k"]) for r in grid["rows"]}


def test_the_evaluator_records_every_uniform_claim_and_shows_the_grid(tmp_path):
    z = np.random.default_rng(1).normal(size=(600, 4)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    config = C.load("tiny", ["generators.specs=uniform bound=1", "generators.author_grid_n=3000"])
    ctx = registry.RunContext(config, str(tmp_path / "out"), z_file=str(tmp_path / "z.npy"))
    result = registry.run(ctx, ["generators"])["generators"]
    evidence = result.numbers["evidence"]
    assert set(evidence) == {*UNIFORM_IDS, "uniform_radius_law"}
    for claim_id, record in evidence.items():
        e = Evidence.of(record)
        assert e.interval[0] <= e.estimate <= e.interval[1] and e.n == 3000, claim_id
        assert claims.claim(claim_id).rule(e) in claims.OUTCOMES
    view = registry.view(result, "m", (2.0,))
    grid_rows = [r for r in view.rows if r["generator"].startswith("post II's grid")]
    assert len(grid_rows) == 2 * len(generators.AUTHOR_BOUNDS) * len(generators.AUTHOR_KS)
    assert {r["units"] for r in grid_rows} == {"absolute", "scaled"} and all(
        " to " in r["95% interval"] for r in grid_rows
    )
    assert "author_grid" in view.figures and any("post II's uniform grid" in f for f in view.findings)


def test_no_grid_when_its_size_is_zero(tmp_path):
    cfg = C.load("tiny", ["generators.author_grid_n=0"])
    assert generators.measure_grid(np.zeros((10, 4)), {}, cfg, str(tmp_path)) == ({}, {})
    with pytest.raises(C.ConfigError, match=r"generators\.author_grid_n"):
        C.load("tiny", ["generators.author_grid_n=-1"])
