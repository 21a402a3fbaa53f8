"""What evaluators record for the posts' claims (ae_jax.studies.claims decides them): `Evidence`, an estimate with
its interval and null, stored under an evaluator's numbers["evidence"][claim id], and the posts' own numbers the
evaluators measure at (thresholds, uniform bounds and boxes)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

# Post III: "a pronounced peak at a radius of R=16.5" in a 256-dimensional latent space.
AUTHOR_RADIUS_PEAK, AUTHOR_Z_DIM = 16.5, 256
# Post II's component counts: (id, what is counted, threshold in the posts' units).
COUNT_THRESHOLDS = (
    ("mu_ge_0.25", "|mu|", 0.25),
    ("mu_ge_1", "|mu|", 1.0),
    ("fwhm_ge_1", "FWHM", 1.0),
    ("fwhm_ge_1.5", "FWHM", 1.5),
    ("fwhm_ge_3", "FWHM", 3.0),
)
AUTHOR_UNIFORM_POINTS = 170_000  # z-points per uniform setting in post II ("out of 170.000")
# Post II's uniform generators: (b, k) of each statement about hits inside mu +- k FWHM.
UNIFORM_SETTINGS = ((12.0, 3.0), (12.0, 12.0), (2.0, 2.0), (1.5, 2.0), (1.5, 1.5), (1.0, 1.5))


def author_scale(radius_peak: float, z_dim: int) -> float:
    """Our latent's unit in the posts' units: the radius peak per sqrt(z_dim) over post III's (16.5 / sqrt(256)).
    The posts' thresholds and bounds times this are theirs "rescaled into our latent's units"."""
    return (radius_peak / math.sqrt(z_dim)) / (AUTHOR_RADIUS_PEAK / math.sqrt(AUTHOR_Z_DIM))


def count_claim_id(key: str, scaled: bool) -> str:
    """Claim id of a component count; scaled: thresholds times `author_scale`."""
    return f"count_{key}" + ("_scaled" if scaled else "")


def uniform_claim_id(b: float, k: float, scaled: bool) -> str:
    """Claim id of a uniform setting; scaled: b times `author_scale`."""
    return f"uniform_b{b:g}_k{k:g}" + ("_scaled" if scaled else "")


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One model's measurement of one claim (JSON: `to_json` / `of`)."""

    estimate: float
    interval: tuple[float, float]
    n: int  # the sample the interval is over (points, generated z-points, images)
    method: str  # how the interval was made, e.g. "bootstrap over points, 200 resamples, 95%"
    null: float | None = None  # the null model's value (None: the claim's bound is its null)
    null_interval: tuple[float, float] | None = None
    null_name: str = ""  # e.g. "column-shuffled z-points (independent components)"
    by_scale: tuple[Evidence, ...] = ()  # the same measurement at larger scales (fewer points), for across_scales

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, record: Mapping) -> Evidence:
        fields = {f.name for f in dataclasses.fields(cls)}
        record = {k: v for k, v in record.items() if k in fields}
        record["interval"] = tuple(record["interval"])
        if record.get("null_interval") is not None:
            record["null_interval"] = tuple(record["null_interval"])
        record["by_scale"] = tuple(cls.of(r) for r in record.get("by_scale", ()))
        return cls(**record)
