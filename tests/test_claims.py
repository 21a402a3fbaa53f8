"""The claims registry: every rule reaches each of its outcomes, seeds must agree, and what was not measured says
so, naming its evaluator."""

import pytest

from ae_jax.studies import claims as C


def evidence(low, high, null=None, **kw):
    return C.Evidence((low + high) / 2, (low, high), 100, "test", null=null, **kw)


@pytest.mark.parametrize(
    "rule, interval, null, outcome",
    [
        (C.at_most(10), (2, 9), None, C.SUPPORTED),
        (C.at_most(10), (11, 14), None, C.REFUTED),
        (C.at_most(10), (8, 12), None, C.INCONCLUSIVE),
        (C.at_least(0.99), (0.995, 1.0), None, C.SUPPORTED),
        (C.at_least(0.99), (0.2, 0.5), None, C.REFUTED),
        (C.at_least(0.99), (0.98, 1.0), None, C.INCONCLUSIVE),
        (C.near_null(0.1), (0.95, 1.05), 1.0, C.SUPPORTED),
        (C.near_null(0.1), (1.2, 1.4), 1.0, C.REFUTED),
        (C.near_null(0.1), (0.5, 0.8), 1.0, C.REFUTED),
        (C.near_null(0.1), (1.05, 1.2), 1.0, C.INCONCLUSIVE),
        (C.near_null(0.1), (-1.05, -0.95), -1.0, C.SUPPORTED),  # a negative null: the band is still ordered
    ],
)
def test_each_rule_reaches_each_outcome(rule, interval, null, outcome):
    assert rule(evidence(*interval, null=null)) == outcome


@pytest.mark.parametrize(
    "interval, outcome",
    [((1, 2), C.SUPPORTED), ((6, 9), C.REFUTED), ((2, 4), C.INCONCLUSIVE), ((4, 6), C.INCONCLUSIVE)],
)
def test_below_null_compares_two_intervals(interval, outcome):
    assert C.below_null()(evidence(*interval, null=4.0, null_interval=(3.0, 5.0))) == outcome
    with pytest.raises(ValueError, match="null interval"):
        C.below_null()(evidence(*interval, null=4.0))


def judged(seed, fds, variational=False, kl_weight=0.0):
    """A recorded model of a vae_prior study: its judge rows (label, FD with interval) beside the reference rows."""
    rows = [
        {"label": f"g{i}", "judge_frechet": fd, "judge_frechet_low": fd - 0.5, "judge_frechet_high": fd + 0.5}
        for i, fd in enumerate(fds)
    ]
    rows = [{**r, "judge_images": 1024, "judge_resamples": 200} for r in rows]
    rows.append({"label": "real vs real", "judge_frechet": 0.0, "judge_frechet_low": 0.0, "judge_frechet_high": 0.1})
    config = {"seed": seed, "model": {"variational": variational, "kl_weight": kl_weight}}
    return {"config": config, "evaluators": {"judge": {"numbers": {"rows": rows}}}}


@pytest.mark.parametrize("vae_fd, outcome", [(1.0, C.SUPPORTED), (9.0, C.REFUTED), (3.2, C.INCONCLUSIVE)])
def test_vaes_help_is_decided_against_the_aes_closest_generator(vae_fd, outcome):
    seeds = [
        [judged(s, [5.0, 3.0]), judged(s, [2.0], True, 1e-6), judged(s, [vae_fd + 0.1 * s], True, 1.0)] for s in (0, 1)
    ]
    (v,) = C.prior_verdicts([m for models in seeds for m in models])
    assert v.outcome == outcome and len(v.evidence) == 2  # one per seed: the kl_weight 1 VAE, not the 1e-6 one
    assert v.evidence[0].null == 3.0 and v.evidence[0].null_name == "the plain AE's g1"
    assert "across 2 seeds" in C.table_row(v)["ours"]


def test_vaes_help_without_a_standard_vae_is_not_measured():
    (v,) = C.prior_verdicts([judged(0, [5.0]), judged(0, [2.0], True, 1e-6)])
    assert v.outcome == C.NOT_MEASURED and "kl_weight 1" in v.reason


def test_a_near_null_rule_without_a_null_is_refused():
    with pytest.raises(ValueError, match="null"):
        C.near_null(0.1)(evidence(0, 1))


def model(claim_id, evaluator, ev):
    return {"evaluators": {evaluator: {"numbers": {"evidence": {claim_id: ev.to_json()}}}}}


def test_every_claim_quotes_a_post_and_every_verdict_is_reachable_from_models():
    assert len({c.id for c in C.CLAIMS}) == len(C.CLAIMS)
    assert all(c.post in (C.POST_I, C.POST_II, C.POST_III) and c.quote and c.evaluator for c in C.CLAIMS)
    c = C.claim("count_fwhm_ge_3")
    for interval, outcome in (((1, 4), C.SUPPORTED), ((30, 60), C.REFUTED), ((3, 8), C.INCONCLUSIVE)):
        (v,) = C.verdicts([model(c.id, "distribution", evidence(*interval))], [c])
        assert v.outcome == outcome and v.reason == "one seed: no interval across seeds"
        assert C.table_row(v)["verdict"].startswith(outcome)


def test_seeds_must_agree_and_their_spread_is_a_t_interval():
    c = C.claim("count_fwhm_ge_3")
    agree = [model(c.id, "distribution", evidence(v - 1, v + 1)) for v in (2, 3, 4)]
    (v,) = C.verdicts(agree, [c])
    assert v.outcome == C.SUPPORTED and v.per_seed == (C.SUPPORTED,) * 3 and v.reason == ""
    mean, low, high = v.across_seeds()
    t = 4.3027  # Student t, 97.5% quantile at 2 degrees of freedom (tables)
    assert (
        mean == 3 and low == pytest.approx(3 - t / 3**0.5, rel=1e-4) and high == pytest.approx(3 + t / 3**0.5, rel=1e-4)
    )
    assert "across 3 seeds" in C.table_row(v)["ours"]
    split = agree[:2] + [model(c.id, "distribution", evidence(20, 30))]
    (v,) = C.verdicts(split, [c])
    assert v.outcome == C.INCONCLUSIVE and v.per_seed == (C.SUPPORTED, C.SUPPORTED, C.REFUTED)


def test_a_claim_its_evaluator_did_not_measure_says_so_by_name():
    c = C.claim("filaments_one_dimensional")
    (v,) = C.verdicts([{"evaluators": {"distribution": {"numbers": {}}}}], [c])
    assert v.outcome == C.NOT_MEASURED and "intrinsic_dimension" in v.reason
    row = C.table_row(v)
    assert row["ours"] == "-" and row["verdict"].startswith("not measured") and C.POST_III in row["quote"]


def test_the_null_and_its_interval_are_shown_with_the_estimate():
    c = C.claim("radius_from_components")
    e = evidence(6.2, 6.6, null=1.6, null_interval=(1.5, 1.7), null_name="column-shuffled z-points")
    (v,) = C.verdicts([model(c.id, "distribution", e)], [c])
    row = C.table_row(v)
    assert v.outcome == C.REFUTED
    assert row["ours"] == "6.4 [6.2, 6.6]" and row["null"] == "1.6 [1.5, 1.7] (column-shuffled z-points)"
    assert C.Evidence.of(e.to_json()) == e


def _ratio(low, high, by_scale=()):
    return C.Evidence((low + high) / 2, (low, high), 100, "bootstrap", by_scale=by_scale)


@pytest.mark.parametrize(
    ("smallest", "larger", "outcome"),
    [
        ((0.2, 0.3), [(0.3, 0.45), (0.8, 1.2)], C.SUPPORTED),  # the last scale does not separate from 1: not asked
        ((0.2, 0.3), [(0.3, 0.45), (0.6, 0.9)], C.INCONCLUSIVE),  # separated from 1 at a larger scale, above 0.5
        ((0.6, 0.7), [(0.2, 0.3)], C.REFUTED),  # the smallest scale decides a refutation alone
        ((0.4, 0.6), [(0.2, 0.3)], C.INCONCLUSIVE),
    ],
)
def test_a_claim_across_scales_needs_every_separated_scale(smallest, larger, outcome):
    c = C.claim("filaments_low_dimensional")
    e = _ratio(*smallest, tuple(_ratio(*i) for i in larger))
    assert c.outcome(e) == outcome
    assert c.outcome(C.Evidence.of(e.to_json())) == outcome  # the record survives JSON
    ours = C.table_row(C.decide(c, [e]))["ours"]  # the page shows every scale's interval behind the verdict
    assert all(f"[{low:.3g}, {high:.3g}]" in ours for low, high in (smallest, *larger))
