"""The judge evaluator: Frechet distance, k-NN precision and recall (Kynkaanniemi et al. 2019), density and coverage
(Naeem et al. 2020), in the feature space of the judge network (trained by ae_jax.train.judge), of each generator's
decoded points against held-out images, each with a bootstrap interval, beside two reference rows: reconstructions
(the decoder at its best) and real vs real (the floor at the same sample size)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import stages
from ae_jax.evaluators import encode, generators, registry
from ae_jax.evaluators.generators import Decode
from ae_jax.numerics import hits, stats
from ae_jax.report import pages
from ae_jax.runtime import make_key

logger = logging.getLogger(__name__)

REFERENCE_ROWS = ("reconstructions", "real vs real")  # rows that are not generators


def _with_interval(name: str, estimate, resampled, bounds: tuple[float, float]) -> dict:
    """{name: estimate, name_low, name_high}: its 95% bootstrap interval (stats.bootstrap_interval)."""
    low, high = stats.interval_of(estimate, resampled, bounds=bounds)
    return {name: float(estimate), f"{name}_low": low, f"{name}_high": high}


def _mean_with_interval(name: str, per_point, rows, bounds: tuple[float, float]) -> dict:
    """`_with_interval` of the mean of per-point values, resampled by `rows` (stats.bootstrap_rows)."""
    per_point = jnp.asarray(per_point, jnp.float32)
    return _with_interval(name, jnp.mean(per_point), jnp.mean(per_point[rows], axis=1), bounds)


def knn_scores(f_real, real_radii, f_set, k: int, rows_real, rows_set) -> dict:
    """Precision, recall, density and coverage of scored features f_set against held-out features f_real (k-NN
    balls of radius the k-th neighbour distance, hits.ball_membership), each with its 95% bootstrap interval. Each
    is a mean over points of one set, resampled by that set's rows: precision and density over the scored points
    (rows_set), recall and coverage over the held-out ones (rows_real), the balls of the full sets fixed."""
    near_real, reached = hits.ball_membership(f_real, real_radii, f_set)  # per scored point; per held-out point
    near_set, _ = hits.ball_membership(f_set, stats.knn_distances(f_set, k), f_real)  # per held-out point
    return {
        **_mean_with_interval("judge_precision", near_real > 0, rows_set, (0.0, 1.0)),
        **_mean_with_interval("judge_recall", near_set > 0, rows_real, (0.0, 1.0)),
        **_mean_with_interval("judge_density", near_real / k, rows_set, (0.0, math.inf)),
        **_mean_with_interval("judge_coverage", reached, rows_real, (0.0, 1.0)),
    }


def sample_size(judge_images: int, held_out: int, draws: Sequence[tuple]) -> tuple[int, str]:
    """(n, why): the images a judge row scores, judge_images or fewer where the held-out split has fewer than
    2 judge_images or a generator drew fewer points; `why` says so ('' when n = judge_images)."""
    fewest = min((len(points) for _, points, _ in draws), default=judge_images)
    n = min(judge_images, held_out // 2, fewest)
    if n == judge_images:
        return n, ""
    return n, (
        f"judge scores on {n:,} images a row: generators.judge_images={judge_images:,} asks for "
        f"{2 * judge_images:,} held-out images (the split has {held_out:,}) and as many points from each "
        f"generator (the fewest drawn: {fewest:,})"
    )


def judge_scores(
    draws: Sequence[tuple],
    judge_images: int,
    decode: Decode,
    features: Callable,
    real_images: np.ndarray,
    reconstruct: Decode,
    k: int,
    resamples: int,
    seed: int,
) -> list[dict]:
    """Frechet distance and `knn_scores` of the first n decoded points of every generator's draws
    (generators.draws), then of reconstructions and of the next n held-out images, each against the first n
    held-out images, with 95% bootstrap intervals from `resamples` resamples keyed by `seed`; n = judge_images,
    or fewer (logged) where the held-out images are fewer than 2 judge_images or a generator drew fewer points.

    A resample draws n rows with replacement from the held-out set and from the scored set (the same rows
    for every scored set). The Frechet distance is recomputed on both; the k-NN scores (`knn_scores`) resample
    only the points they average over, with the k-NN balls of the full sets fixed: resampled support points would
    be their own duplicates at distance 0 and shrink the radii."""
    from ae_jax.train.judge import frechet_distances

    n, why = sample_size(judge_images, len(real_images), draws)
    if why:
        logger.warning(why)
    f_real = features(real_images[:n])
    sets = {sampler.label: features(decode(points[:n])) for sampler, points, _ in draws}
    sets["reconstructions"] = features(reconstruct(real_images[:n]))
    sets["real vs real"] = features(np.asarray(real_images[n : 2 * n]))
    key = make_key(seed)
    rows_real, rows_set = (stats.bootstrap_rows(jax.random.fold_in(key, i), n, resamples) for i in (0, 1))
    fd = frechet_distances(f_real, list(sets.values()))
    fd_resampled = frechet_distances(f_real, list(sets.values()), (rows_real, rows_set))
    real_radii = stats.knn_distances(f_real, k)
    rows = []
    for (label, f_set), distance, distances in zip(sets.items(), fd, fd_resampled):
        rows.append(
            {
                "label": label,
                **_with_interval("judge_frechet", distance, distances, (0.0, math.inf)),
                **knn_scores(f_real, real_radii, f_set, k, rows_real, rows_set),
                "judge_images": n,
                "judge_resamples": resamples,
            }
        )
    return rows


def quality(info: dict) -> dict:
    """The judge's held-out score and its trivial baseline's, from judge.json (R^2 or accuracy: higher is better)."""
    metric = next(k[len("valid_") :] for k in info if k.startswith("valid_") and "curve" not in k)
    return {"metric": metric, "held_out": info[f"valid_{metric}"], "baseline": info[f"baseline_{metric}"]}


def no_better(q: dict) -> bool:
    """Whether the judge scores no better than the trivial one on held-out labels (its features say little)."""
    return q["held_out"] <= q["baseline"]


def quality_sentence(q: dict) -> str:
    """The judge's held-out score against its trivial baseline, as a warning when it is no better."""
    said = f"held-out {q['metric']} {q['held_out']:.3f} against its trivial baseline's {q['baseline']:.3f}"
    if no_better(q):
        return f"Warning: the judge is no better than its trivial baseline ({said}): its scores mean little."
    return f"The judge's {said}."


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """Judge scores of each generator's decoded points (the generators evaluator's draws) and the references,
    with the judge's own held-out quality (judge.json) and the sample size asked for and available."""
    cfg, real = ctx.config, ctx.real_images()
    g = cfg.generators
    draws = generators.draws(ctx)
    rows = judge_scores(
        draws,
        g.judge_images,
        ctx.decode,
        ctx.judge(),
        real,
        ctx.reconstruct,
        cfg.judge.precision_k,
        g.judge_resamples,
        cfg.seed,
    )
    pages.write_csv(rows, os.path.join(folder, "judge_scores.csv"))
    quality_info = quality(stages.read_json(os.path.join(ctx.judge_dir, "judge.json")))
    why = sample_size(g.judge_images, len(real), draws)[1]
    return {"rows": rows, "judge_quality": quality_info, "capped": [why] if why else []}, {}


def _interval(r: dict, name: str, share: bool = False) -> str:
    """'low to high' of a row's 95% interval (shares as percentages); empty for results without one."""
    if f"{name}_low" not in r:
        return ""
    low, high = r[f"{name}_low"], r[f"{name}_high"]
    return f"{100 * low:.3g}% to {100 * high:.3g}%" if share else f"{low:.3g} to {high:.3g}"


def _fd_finding(label: str, rows: list[dict]) -> str:
    """The closest and furthest generators' FD against the references', the closest's interval against real
    vs real's."""
    by_fd = sorted(rows, key=lambda r: r["judge_frechet"])
    generated = [r for r in by_fd if r["label"] not in REFERENCE_ROWS]
    ref = {r["label"]: r for r in by_fd if r["label"] in REFERENCE_ROWS}
    best, real = generated[0], ref["real vs real"]
    sentence = (
        f"{label}: judge Frechet distance to held-out images, {best['judge_images']:,} images a row, "
        f"{best['judge_frechet']:.3g} for {best['label']} (the closest generator), "
        f"{generated[-1]['judge_frechet']:.3g} for {generated[-1]['label']}; against "
        f"{ref['reconstructions']['judge_frechet']:.3g} for reconstructions and {real['judge_frechet']:.3g} between "
        "two halves of the held-out images"
    )
    if "judge_frechet_low" not in best:
        return sentence + "."
    apart = best["judge_frechet_low"] > real["judge_frechet_high"]
    return sentence + (
        f". 95% bootstrap intervals ({best['judge_resamples']} resamples): {_interval(best, 'judge_frechet')} for "
        f"the closest generator, {_interval(real, 'judge_frechet')} for real vs real: "
        + ("the closest generator's lies above real vs real's." if apart else "they overlap: not told apart at this n.")
    )


# The k-NN scores: (name in the numbers, name on the page, a share of the judged images?).
KNN_SCORES = (
    ("judge_precision", "precision", True),
    ("judge_recall", "recall", True),
    ("judge_density", "density", False),
    ("judge_coverage", "coverage", True),
)


def _score_text(r: dict, name: str, share: bool) -> str:
    """A row's score with its interval, '12.5% [10.1% to 14.9%]' or '0.91 [0.85 to 0.97]'."""
    value = f"{100 * r[name]:.3g}%" if share else f"{r[name]:.3g}"
    return f"{value} [{_interval(r, name, share)}]"


def _knn_finding(label: str, best: dict, real: dict) -> str:
    """The closest generator's k-NN scores beside real vs real's (the floor at the same n), with intervals."""
    scores = [(name, page, share) for name, page, share in KNN_SCORES if name in best and f"{name}_low" in best]
    return (
        f"{label}: k-NN scores of {best['label']} (the closest generator) against real vs real's, 95% intervals: "
        + "; ".join(f"{page} {_score_text(best, n, s)} vs {_score_text(real, n, s)}" for n, page, s in scores)
        + "."
    )


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Per generator and reference: Frechet distance, precision, recall, density and coverage, with their 95%
    bootstrap intervals and the number of judged images."""
    rows = []
    for r in result.numbers["rows"]:
        row = {"generator": r["label"], "judge FD": r["judge_frechet"]}
        row["FD 95% interval"] = _interval(r, "judge_frechet")
        for name, page, share in (score for score in KNN_SCORES if score[0] in r):  # density: from format 6
            row[f"judge {page}"] = pages.Share.of(r[name], r["judge_images"]) if share else r[name]
            row[f"{page} 95% interval"] = _interval(r, name, share)
        rows.append({**row, "judged images": r["judge_images"]})
    q = result.numbers.get("judge_quality")  # absent from results of format 2
    said = [f"{label}: {quality_sentence(q)}"] if q else []
    warn = bool(q) and no_better(q)
    capped = [f"{label}: {c}; FDs compare only at equal n." for c in result.numbers.get("capped", [])]
    best = min(
        (r for r in result.numbers["rows"] if r["label"] not in REFERENCE_ROWS), key=lambda r: r["judge_frechet"]
    )
    real = next(r for r in result.numbers["rows"] if r["label"] == "real vs real")
    return registry.View(
        headline={"closest generator": best["label"], "its judge FD": best["judge_frechet"]},
        rows=rows,
        findings=[_fd_finding(label, result.numbers["rows"]), _knn_finding(label, best, real)] + ([] if warn else said),
        warnings=(said if warn else []) + capped,
    )


registry.register(
    registry.Evaluator(
        "judge",
        measure,
        view,
        lambda c: {
            "z": encode.points_digest(c),
            "params": c.params_digest(),
            "seed": c.config.seed,
            "data": registry.data_inputs(c),
            "judge": stages.file_digest(os.path.join(c.judge_dir, "judge.json")),
        },
        sections=("generators", "judge"),
        title="judge scores",
        needs_run=True,
        needs_judge=True,
        # 2: real-vs-real row; 3: the judge's held-out quality; 4: intervals, float64 FD; 5: mixture restarts;
        # 6: density and coverage
        format=6,
    )
)
