"""The filament claims (post III) as the intrinsic_dimension evaluator records them: each rule driven to support
by a curve and to refutation by independent Gaussian components, run end to end through the registry."""

import numpy as np
import pytest

from ae_jax import config as config_lib
from ae_jax.evaluators import registry
from ae_jax.evaluators.evidence import Evidence
from ae_jax.studies import claims

CLAIM_IDS = ("filaments_low_dimensional", "filaments_one_dimensional")


def _curve(n: int, d: int, seed: int) -> np.ndarray:
    """A closed curve winding through d dimensions (cosines of 8 frequencies, random phases): locally one
    line, while its covariance spreads over 16 dimensions, so the fitted Gaussian fills them."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, (n, 1))
    frequencies, phases = rng.permutation(np.repeat(np.arange(1, 9), 2))[:d], rng.uniform(0, 2 * np.pi, d)
    return np.cos(t * frequencies + phases).astype(np.float32)


def _independent(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _run(tmp_path, z: np.ndarray) -> registry.Result:
    path = tmp_path / "z.npy"
    np.save(path, z)
    updates = {"intrinsic.min_points": 100, "intrinsic.bootstrap_resamples": 50, "intrinsic.local_pca_points": 200}
    ctx = registry.RunContext(config_lib.load("case1", updates=updates), str(tmp_path / "out"), z_file=str(path))
    return registry.run(ctx, ["intrinsic_dimension"])["intrinsic_dimension"]


def _assert_inside(e: Evidence) -> None:
    assert e.interval[0] <= e.estimate <= e.interval[1]
    assert e.null_interval[0] <= e.null <= e.null_interval[1]


@pytest.mark.parametrize(("points", "outcome"), [(_curve, claims.SUPPORTED), (_independent, claims.REFUTED)])
def test_each_filament_claim_is_supported_by_a_curve_and_refuted_by_independent_components(tmp_path, points, outcome):
    result = _run(tmp_path, points(800, 16, 0))
    numbers = result.numbers
    for claim_id in CLAIM_IDS:
        e = Evidence.of(numbers["evidence"][claim_id])
        _assert_inside(e)
        assert claims.claim(claim_id).outcome(e) == outcome, (claim_id, e)
    low = Evidence.of(numbers["evidence"]["filaments_low_dimensional"])
    assert low.n == 800 and abs(low.null - 1) < 0.25  # column-shuffled / Gaussian: both fill the space
    by_size = numbers["evidence_by_size"]["filaments_low_dimensional"]
    for estimator in ("two_nn", "mle"):
        assert [r["n_points"] for r in by_size[estimator]] == [800, 400, 200, 100]
        for record in by_size[estimator]:
            _assert_inside(Evidence.of(record))
    assert by_size["two_nn"][0]["estimate"] == low.estimate
    assert [e.n for e in low.by_scale] == [400, 200, 100]  # the larger scales the claim is also decided at
    rows = numbers["rows"]
    assert list(rows) == ["z-points", "fitted full Gaussian", "column-shuffled z-points"]
    for size, (z, *nulls) in enumerate(zip(*rows.values())):
        for estimator in ("two_nn", "mle"):
            assert all(r[f"{estimator}_low"] <= r[estimator] <= r[f"{estimator}_high"] for r in (z, *nulls))
            separated = z[f"{estimator}_high"] < min(r[f"{estimator}_low"] for r in nulls)
            if outcome == claims.SUPPORTED or size == 0:  # the curve is lower-dimensional at every size
                assert separated == (outcome == claims.SUPPORTED)
    view = registry.view(result, "m", (2.0,))
    assert [row["points"] for row in view.rows] == [800, 400, 200, 100]
    assert "TwoNN fitted full Gaussian" in view.rows[0] and "MLE column-shuffled z-points" in view.rows[0]
    assert "smallest scale (800 points)" in view.findings[0]
