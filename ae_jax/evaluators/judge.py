"""The judge evaluator: Frechet distance and k-NN precision/recall, in the feature space of the judge network
(trained by ae_jax.train.judge), of each generator's decoded points against held-out images, beside two
reference rows: reconstructions (the decoder at its best) and real vs real (the floor)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ae_jax import stages
from ae_jax.evaluators import encode, generators, registry
from ae_jax.evaluators.generators import Decode
from ae_jax.numerics import hits, stats
from ae_jax.report import pages

REFERENCE_ROWS = ("reconstructions", "real vs real")  # rows that are not generators


def judge_scores(
    draws: Sequence[tuple],
    judge_images: int,
    decode: Decode,
    features: Callable,
    real_images: np.ndarray,
    reconstruct: Decode,
    k: int,
) -> list[dict]:
    """Scores of the first judge_images decoded points of every generator's draws (generators.draws), then of
    reconstructions and of the next held-out images, each against judge_images held-out images."""
    from ae_jax.train.judge import frechet_distance

    n = min(judge_images, len(real_images) // 2)
    f_real = features(real_images[:n])
    real_radii = stats.knn_distances(f_real, k)

    def scores(label: str, images: np.ndarray) -> dict:
        f_gen = features(images[:n])
        return {
            "label": label,
            "judge_frechet": float(frechet_distance(f_real, f_gen)),
            "judge_precision": float(hits.manifold_precision(f_real, real_radii, f_gen)),
            "judge_recall": float(hits.manifold_recall(f_gen, stats.knn_distances(f_gen, k), f_real)),
            "judge_images": n,
        }

    rows = [scores(sampler.label, decode(points[:n])) for sampler, points, _ in draws]
    rows.append(scores("reconstructions", reconstruct(real_images[:n])))
    rows.append(scores("real vs real", np.asarray(real_images[n : 2 * n])))
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
    with the judge's own held-out quality (judge.json)."""
    cfg = ctx.config
    rows = judge_scores(
        generators.draws(ctx),
        cfg.generators.judge_images,
        ctx.decode,
        ctx.judge(),
        ctx.real_images(),
        ctx.reconstruct,
        cfg.judge.precision_k,
    )
    pages.write_csv(rows, os.path.join(folder, "judge_scores.csv"))
    return {"rows": rows, "judge_quality": quality(stages.read_json(os.path.join(ctx.judge_dir, "judge.json")))}, {}


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Per generator and reference: Frechet distance, precision and recall (shares of the judged images)."""
    rows = [
        {
            "generator": r["label"],
            "judge FD": r["judge_frechet"],
            "judge precision": pages.Share.of(r["judge_precision"], r["judge_images"]),
            "judge recall": pages.Share.of(r["judge_recall"], r["judge_images"]),
        }
        for r in result.numbers["rows"]
    ]
    by_fd = sorted(result.numbers["rows"], key=lambda r: r["judge_frechet"])
    generated = [r for r in by_fd if r["label"] not in REFERENCE_ROWS]
    ref = {r["label"]: r["judge_frechet"] for r in by_fd if r["label"] in REFERENCE_ROWS}
    finding = (
        f"{label}: judge Frechet distance to held-out images {generated[0]['judge_frechet']:.3g} for "
        f"{generated[0]['label']} (the closest generator), {generated[-1]['judge_frechet']:.3g} for "
        f"{generated[-1]['label']}; against {ref['reconstructions']:.3g} for reconstructions and "
        f"{ref['real vs real']:.3g} between two halves of the held-out images."
    )
    q = result.numbers.get("judge_quality")  # absent from results of format 2
    said = [f"{label}: {quality_sentence(q)}"] if q else []
    warn = bool(q) and no_better(q)
    return registry.View(
        headline={"closest generator": generated[0]["label"], "its judge FD": generated[0]["judge_frechet"]},
        rows=rows,
        findings=[finding] + ([] if warn else said),
        warnings=said if warn else [],
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
        format=4,  # 2: the real-vs-real reference row; 3: the judge's held-out quality; 4: the mixture's restarts
    )
)
