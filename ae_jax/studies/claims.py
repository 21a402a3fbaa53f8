"""The posts' claims as code. Each claim names its post (a file of ../shared/seeds) and quotes it, says which
evaluator measures it, against what null, and by which rule, written here before any number is read.

An evaluator measures a claim by recording `Evidence` under numbers["evidence"][claim id]: the estimate, its
interval (a bootstrap over points, a binomial interval for a count of hits), the null's value and interval, the
sample size and how the interval was made. A rule maps one model's evidence to an outcome: every rule compares an
interval with a bound, so each outcome is reachable, and "inconclusive" is what an interval straddling its bound
gets. Across seeds (one model per seed) a claim is decided only when every seed decides it the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from scipy import stats as scipy_stats

from ae_jax.evaluators.evidence import (
    AUTHOR_RADIUS_PEAK,
    AUTHOR_UNIFORM_POINTS,
    COUNT_THRESHOLDS,
    UNIFORM_SETTINGS,
    Evidence,
    count_claim_id,
    uniform_claim_id,
)
from ae_jax.evaluators.judge import REFERENCE_ROWS

SUPPORTED, REFUTED, INCONCLUSIVE, NOT_MEASURED = "supported", "refuted", "inconclusive", "not measured"
OUTCOMES = (SUPPORTED, REFUTED, INCONCLUSIVE, NOT_MEASURED)


# ---------------------------------------------------------------------------------------------
# Rules: an interval against a bound.


@dataclasses.dataclass(frozen=True)
class Rule:
    """`at_most` / `at_least`: supported when the whole interval is on the claim's side of the bound, refuted
    when all of it is on the other side, else inconclusive. `near_null`: the bound is a relative tolerance;
    supported when the whole interval lies within the null's value times (1 +- bound), refuted when it lies
    wholly outside that band. `below_null`: supported when the interval lies wholly below the null's interval,
    refuted when wholly above it."""

    kind: str  # at_most | at_least | near_null | below_null
    bound: float

    def __call__(self, e: Evidence) -> str:
        low, high = e.interval
        if self.kind == "below_null":
            if e.null_interval is None:
                raise ValueError("a below_null rule needs the evidence's null interval")
            null_low, null_high = e.null_interval
            return SUPPORTED if high < null_low else REFUTED if low > null_high else INCONCLUSIVE
        if self.kind == "at_most":
            return SUPPORTED if high <= self.bound else REFUTED if low > self.bound else INCONCLUSIVE
        if self.kind == "at_least":
            return SUPPORTED if low >= self.bound else REFUTED if high < self.bound else INCONCLUSIVE
        if e.null is None:
            raise ValueError("a near_null rule needs the evidence's null value")
        band_low, band_high = sorted((e.null * (1 - self.bound), e.null * (1 + self.bound)))
        if band_low <= low and high <= band_high:
            return SUPPORTED
        return REFUTED if high < band_low or low > band_high else INCONCLUSIVE

    @property
    def text(self) -> str:
        if self.kind == "near_null":
            return f"within {self.bound:.0%} of the null"
        if self.kind == "below_null":
            return "interval wholly below the null's interval (refuted when wholly above it)"
        return f"{self.kind.replace('_', ' ')} {self.bound:g}"


def at_most(bound: float) -> Rule:
    return Rule("at_most", bound)


def at_least(bound: float) -> Rule:
    return Rule("at_least", bound)


def near_null(tolerance: float) -> Rule:
    return Rule("near_null", tolerance)


def below_null() -> Rule:
    return Rule("below_null", 0.0)


# ---------------------------------------------------------------------------------------------
# The registry.


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of a post: where it is (post file, a short quote), what measures it and how it is decided."""

    id: str
    title: str
    post: str
    quote: str
    evaluator: str  # whose numbers["evidence"][id] measures it
    measured: str  # what the estimate is, in words
    rule: Rule
    # Set: the rule must also hold at every larger scale (Evidence.by_scale) whose interval excludes this value,
    # the null's (e.g. a dimension ratio of 1: the data indistinguishable from the Gaussian there).
    across_scales: float | None = None

    def rule_text(self) -> str:
        scales = (
            f", and at every larger scale whose interval excludes {self.across_scales:g}"
            if self.across_scales is not None
            else ""
        )
        return f"{self.measured}: {self.rule.text}{scales}"

    def outcome(self, e: Evidence) -> str:
        """The rule on one model's evidence; with across_scales, supported only when the smallest scale is
        supported and so is every larger scale that separates from the null value, refuted when the smallest
        scale is, else inconclusive."""
        smallest = self.rule(e)
        if self.across_scales is None or smallest != SUPPORTED:
            return smallest
        separated = [s for s in e.by_scale if not s.interval[0] <= self.across_scales <= s.interval[1]]
        return SUPPORTED if all(self.rule(s) == SUPPORTED for s in separated) else INCONCLUSIVE


POST_I, POST_II, POST_III = "002_f810418f3da78d23.txt", "001_903d989c19405ef1.txt", "000_3661fa2006c3146b.txt"
FEW_HITS = 10 / AUTHOR_UNIFORM_POINTS  # post II's "(< 10)" and "around 10 out of 170.000", as a share
# Post II's bound on each count (COUNT_THRESHOLDS), for z_dim 256, and its words.
COUNT_BOUNDS = {
    "mu_ge_0.25": (25, "only a few components ( ≤ 25) with mean values <μ> ≥ 0.25"),
    "mu_ge_1": (10, "only a few components ( ≤ 10) with mean values <μ> ≥ +1.0"),
    "fwhm_ge_1": (40, "only relatively few components (≤ 40) with a half-width ≥ 1"),
    "fwhm_ge_1.5": (20, "only a few components (≤ 20) with a half-width ≥ 1.5"),
    "fwhm_ge_3": (5, "only very few components ≤ 5 with a half-width ≥ 3"),
}
# Post II's share of hits for each uniform setting (UNIFORM_SETTINGS), as a rule, and its words.
UNIFORM_STATEMENTS = {
    (12.0, 3.0): (at_most(FEW_HITS), "three times the half-width ... came out to be exactly zero"),
    (12.0, 12.0): (at_most(10 * FEW_HITS), "Even with 12 times the half-width you get only very few vectors"),
    (2.0, 2.0): (at_most(FEW_HITS), "for [-2, 2] only around 10 out of 170.000 vectors would hit"),
    (1.5, 2.0): (at_least(0.99), "b=1.5 and 2 times the half-width. Now the components of all the artificial vectors"),
    (1.5, 1.5): (at_most(FEW_HITS), "change the intervals to hit to 1.5 times the half-width you are back again"),
    (1.0, 1.5): (at_least(0.99), "For b=1 and 1.5 times the half-width we get again a number of 170,000"),
}


SCALE_TEXT = f"(our radius peak / {AUTHOR_RADIUS_PEAK:g}, per sqrt(z_dim / 256))"


def _count_claim(key: str, what: str, threshold: float, scaled: bool) -> Claim:
    bound, quote = COUNT_BOUNDS[key]
    unit = f"{threshold:g} x {SCALE_TEXT}" if scaled else f"{threshold:g}"
    return Claim(
        count_claim_id(key, scaled),
        f"Few components with {what} >= {threshold:g}" + (" (in the latent's own units)" * scaled),
        POST_II,
        quote,
        "distribution",
        f"components with {what} >= {unit}, per 256 components",
        at_most(bound),
    )


def _uniform_claim(b: float, k: float, scaled: bool) -> Claim:
    rule, quote = UNIFORM_STATEMENTS[(b, k)]
    b_text = f"b = {b:g} x {SCALE_TEXT}" if scaled else f"b = {b:g}"
    return Claim(
        uniform_claim_id(b, k, scaled),
        f"Uniform {b_text}, box of {k:g} FWHM",
        POST_II,
        quote,
        "generators",
        f"share of uniform z-points ({b_text}) inside mu +- {k:g} FWHM in every component",
        rule,
    )


CLAIMS = (
    Claim(
        "gaussian_components",
        "Components are Gaussian-like",
        POST_II,
        "Most of the components show a Gaussian like number distribution",
        "distribution",
        "median over components of FWHM / (2.3548 std), against Gaussian components of the same means and stds "
        "binned alike",
        near_null(0.10),
    ),
    *(_count_claim(*count, scaled) for count in COUNT_THRESHOLDS for scaled in (False, True)),
    Claim(
        "few_dominant_axes",
        "Few dominant coordinate axes",
        POST_II,
        "The respective axes involved are less than 10% of the total number.",
        "distribution",
        "share of components whose |mu| or FWHM exceeds 3x its median over components",
        at_most(0.10),
    ),
    Claim(
        "pca_few_axes",
        "Few dominant principal components",
        POST_II,
        "a number of dominant main components in the same number region (0.1 * N)",
        "distribution",
        "participation ratio of the covariance's eigenvalues / z_dim",
        at_most(0.10),
    ),
    Claim(
        "centre_on_few_axes",
        "The centre lies near a few coordinate axes",
        POST_II,
        "a center point close to or within a sub-volume of very low dimensions spanned by some coordinate axes",
        "distribution",
        "share of |mean|^2 carried by the 10% of components with the largest |mu|",
        at_least(0.80),
    ),
    Claim(
        "radius_from_components",
        "The radius distribution follows from the components",
        POST_III,
        "How does the peak in the close vicinity of R=16 fit to the above number density data along the "
        "coordinate axes? Answer: Very well.",
        "distribution",
        "std of |z| against column-shuffled z-points (independent components with the same marginals)",
        near_null(0.25),
    ),
    *(_uniform_claim(b, k, scaled) for b, k in UNIFORM_SETTINGS for scaled in (False, True)),
    Claim(
        "uniform_radius_law",
        "The radius law of uniform generators",
        POST_II,
        "<R> ≈ b * sqrt(1/3 * N) * sqrt( 1 / (1 + 1/(4*N) )",
        "generators",
        "mean |z| of uniform z-points (b = 1) / the post's formula",
        near_null(0.01),
    ),
    Claim(
        "filaments_low_dimensional",
        "Filaments: low-dimensional at small scales",
        POST_III,
        "lie within thin filaments on characteristic small length scales",
        "intrinsic_dimension",
        "TwoNN dimension at the smallest scale / the fitted Gaussian's at the same number of points",
        at_most(0.5),
        across_scales=1.0,
    ),
    Claim(
        "filaments_one_dimensional",
        "Filaments: basically one-dimensional",
        POST_III,
        "long, very thin and basically one-dimensional filaments",
        "intrinsic_dimension",
        "share of local variance along the first local principal axis at the smallest scale",
        at_least(0.8),
    ),
)


def claim(claim_id: str) -> Claim:
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    raise KeyError(f"no claim {claim_id!r}; claims: {', '.join(c.id for c in CLAIMS)}")


# Post I's "VAEs help", decided across the models of the vae_prior study: the VAE's prior against the plain
# AE's best fitted generator, both judged on the same held-out images.
STANDARD_KL_WEIGHT = 1.0  # the VAE the post means: its KL term at full weight
VAES_HELP = Claim(
    "vaes_help",
    "VAEs help: their prior decodes closer to the images than the AE's best generator",
    POST_I,
    "VAEs significantly increase the probability to hit a meaningful z-point in latent space",
    "judge",
    f"judge Frechet distance of N(0, I) decoded through the VAE at kl_weight {STANDARD_KL_WEIGHT:g}, against the "
    "plain AE's closest fitted generator's (the null)",
    below_null(),
)
PRIOR_CLAIMS = (VAES_HELP,)


def generated_rows(judge_numbers: Mapping) -> list[dict]:
    """A judge result's rows of generated z-points (its reference rows, reconstructions and real vs real, left out)."""
    return [r for r in judge_numbers["rows"] if r["label"] not in REFERENCE_ROWS]


def prior_evidence(ae_rows: Sequence[Mapping], vae_row: Mapping) -> Evidence:
    """A VAE generator's judge row against the plain AE's closest generator among `ae_rows` (its null), each with
    its bootstrap interval over the same held-out images."""
    best = min(ae_rows, key=lambda r: r["judge_frechet"])
    return Evidence(
        vae_row["judge_frechet"],
        (vae_row["judge_frechet_low"], vae_row["judge_frechet_high"]),
        vae_row["judge_images"],
        f"bootstrap over held-out and decoded images, {vae_row['judge_resamples']} resamples, 95%",
        best["judge_frechet"],
        (best["judge_frechet_low"], best["judge_frechet_high"]),
        f"the plain AE's {best['label']}",
    )


def prior_verdicts(models: Sequence[Mapping]) -> list[Verdict]:
    """PRIOR_CLAIMS decided on a study's recorded models (results.json), per seed the plain AE's judged generators
    against the standard VAE's prior; not measured where a seed lacks either."""
    by_seed: dict[int, list[Mapping]] = {}
    for m in models:
        by_seed.setdefault(m["config"]["seed"], []).append(m)
    evidence = []
    for seed_models in by_seed.values():
        judged = [m for m in seed_models if "judge" in m["evaluators"]]
        ae = [m for m in judged if not m["config"]["model"]["variational"]]
        vae = [m for m in judged if m["config"]["model"]["variational"]]
        vae = [m for m in vae if m["config"]["model"]["kl_weight"] == STANDARD_KL_WEIGHT]
        if ae and vae:
            ae_rows = generated_rows(ae[0]["evaluators"]["judge"]["numbers"])
            evidence += [
                prior_evidence(ae_rows, row) for row in generated_rows(vae[0]["evaluators"]["judge"]["numbers"])
            ]
    verdict = decide(VAES_HELP, evidence)
    if not evidence:
        why = f"not measured: no seed has a plain AE and a VAE at kl_weight {STANDARD_KL_WEIGHT:g} both judged"
        verdict = dataclasses.replace(verdict, reason=why)
    return [verdict]


# ---------------------------------------------------------------------------------------------
# Verdicts over models (one per seed).


@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: Claim
    outcome: str
    evidence: tuple[Evidence, ...]  # one per seed that measured it
    per_seed: tuple[str, ...]  # each seed's outcome
    reason: str = ""  # for "not measured", and what across-seed intervals lack with one seed

    def across_seeds(self) -> tuple[float, float, float] | None:
        """(mean, low, high) of the estimates across seeds (`t_interval`); None with one seed."""
        return t_interval([e.estimate for e in self.evidence])


def t_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(mean, low, high): the mean of values (one per seed) with its 95% Student t interval; None for one value."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def evidence_of(model: Mapping, c: Claim) -> Evidence | None:
    """The claim's evidence in one model's record (a study's results.json model), if its evaluator measured it."""
    result = model.get("evaluators", {}).get(c.evaluator)
    record = None if result is None else result["numbers"].get("evidence", {}).get(c.id)
    return None if record is None else Evidence.of(record)


def decide(c: Claim, evidence: Sequence[Evidence]) -> Verdict:
    """The claim's verdict from each seed's evidence: decided only when every seed decides it alike."""
    if not evidence:
        return Verdict(c, NOT_MEASURED, (), (), f"not measured: the {c.evaluator} evaluator recorded no evidence")
    per_seed = tuple(c.outcome(e) for e in evidence)
    outcome = per_seed[0] if len(set(per_seed)) == 1 else INCONCLUSIVE
    reason = "" if len(evidence) > 1 else "one seed: no interval across seeds"
    return Verdict(c, outcome, tuple(evidence), per_seed, reason)


def verdicts(models: Sequence[Mapping], claims: Sequence[Claim] = CLAIMS) -> list[Verdict]:
    """Every claim's verdict over the models (the seeds of one setting)."""
    return [decide(c, [e for m in models if (e := evidence_of(m, c)) is not None]) for c in claims]


def _interval_text(e: Evidence) -> str:
    return f"{e.estimate:.3g} [{e.interval[0]:.3g}, {e.interval[1]:.3g}]"


def _scales_text(e: Evidence) -> str:
    """' (larger scales: n points: estimate [low, high], ...)' when the evidence has them, else ''."""
    scales = ", ".join(f"{s.n:,} points: {_interval_text(s)}" for s in e.by_scale)
    return f" (larger scales: {scales})" if scales else ""


def table_row(v: Verdict) -> dict:
    """A verdict as one row of the claims table: claim, quote (post), ours with its interval (and at every
    larger scale the verdict also read, for a claim across scales), null, verdict."""
    ours = "; ".join(_interval_text(e) + _scales_text(e) for e in v.evidence) or "-"
    spread = v.across_seeds()
    if spread:
        ours = f"{spread[0]:.3g} [{spread[1]:.3g}, {spread[2]:.3g}] across {len(v.evidence)} seeds ({ours})"
    e = v.evidence[0] if v.evidence else None
    null = "-"
    if e is not None and e.null is not None:
        null = f"{e.null:.3g}" + (f" [{e.null_interval[0]:.3g}, {e.null_interval[1]:.3g}]" if e.null_interval else "")
        null += f" ({e.null_name})" if e.null_name else ""
    return {
        "claim": v.claim.title,
        "quote": f'"{v.claim.quote}" ({v.claim.post})',
        "rule": v.claim.rule_text(),
        "ours": ours,
        "null": null,
        "verdict": v.outcome + (f" ({v.reason})" if v.reason else ""),
    }
