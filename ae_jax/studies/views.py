"""Report views of a study's models: headline rows, generator rows per k, sections and findings sentences."""

from __future__ import annotations

from collections.abc import Sequence

from ae_jax.report import pages
from ae_jax.studies.pipeline import ModelResult

REFERENCE_ROWS = ("reconstructions", "real vs real")  # judge rows that are not generators


def headline(m: ModelResult) -> dict:
    """The few numbers of a model's study that go side by side in tables."""
    row = {"model": m.label}
    if "reconstruction" in m.results:
        r = m.results["reconstruction"].numbers
        row.update({"held-out mse": r["eval_mse"], "psnr dB": r["eval_psnr"], "kl_share": r["kl_share"]})
    if "distribution" in m.results:
        a = m.results["distribution"].numbers
        row.update(
            {
                "dominant components": len(a["dominant_components"]),
                "radius peak": a["radius"]["peak"],
                "radius mean": a["radius"]["mean"],
            }
        )
        row.update({k: v for k, v in a["counts"].items() if isinstance(v, (int, float))})
    return row


def sweep_rows(m: ModelResult, k: float) -> list[dict]:
    """Per generator at one k: MC hit fraction, analytic log10 probability, radii, precision and judge scores."""
    judged = {r["label"]: r for r in m.results["judge"].numbers["rows"]} if "judge" in m.results else {}
    rows = []
    for r in m.results["generators"].numbers["results"]:
        hit = next(h for h in r["hits"] if h["k"] == k)
        precision = next(v for key, v in r.items() if key.startswith("manifold_precision"))
        scores = judged.get(r["label"], {})
        rows.append(
            {
                "model": m.label,
                "generator": r["label"],
                "k": k,
                "MC hit fraction": hit["mc_fraction"],
                "log10 P analytic": "n/a" if hit["log10_analytic"] is None else hit["log10_analytic"],
                "radius mean": r["radius"]["mean"],
                "radius analytic": r["radius"]["analytic_mean"],
                "k-NN precision": precision,
                **(
                    {"judge FD": scores["judge_frechet"], "judge precision": scores["judge_precision"]}
                    if scores
                    else {}
                ),
            }
        )
    return rows


def model_sections(m: ModelResult, ks: Sequence[float]) -> list[tuple[str, list[str]]]:
    """Report sections for one model: one per evaluator that ran, figures under their numbers."""
    sections = []
    if "reconstruction" in m.results:
        r = m.results["reconstruction"]
        sections.append(
            (
                f"{m.label}: reconstruction",
                [pages.table([r.numbers])] + [pages.figure(p, name) for name, p in r.figures.items()],
            )
        )
    if "distribution" in m.results:
        r = m.results["distribution"]
        sections.append(
            (
                f"{m.label}: z-point distribution",
                [pages.table([headline(m)])] + [pages.figure(p, name) for name, p in r.figures.items()],
            )
        )
    if "generators" in m.results:
        r = m.results["generators"]
        rows = [row for k in ks for row in sweep_rows(m, k)]
        sections.append(
            (f"{m.label}: generators", [pages.table(rows)] + [pages.figure(p, name) for name, p in r.figures.items()])
        )
    if "intrinsic_dimension" in m.results:
        r = m.results["intrinsic_dimension"]
        table = [dict(set=k, **row) for k, rows in r.numbers["rows"].items() for row in rows]
        sections.append(
            (
                f"{m.label}: intrinsic dimension",
                [pages.table(table)] + [pages.figure(p, name) for name, p in r.figures.items()],
            )
        )
    return sections


def _short(row: dict) -> str:
    """A generator's label, or for fitted ones (whose labels list fitted values) its sampler's name."""
    return row["label"] if row["sampler"] in ("grid", "uniform", "isotropic") else f"fitted {row['sampler']}"


def findings(models: Sequence[ModelResult], k: float) -> tuple[list[str], list[str]]:
    """What the evaluators found, as a few sentences with the headline numbers (3 significant digits), and the
    figures that show it (each model's decoded grid): the first thing a results page says."""
    sentences, figures = [], []
    for m in models:
        r = m.results
        if "reconstruction" in r:
            n = r["reconstruction"].numbers
            sentences.append(
                f"{m.label} reconstructs held-out images with per-pixel MSE {n['eval_mse']:.3g} "
                f"(PSNR {n['eval_psnr']:.3g} dB)."
            )
        if "generators" in r:
            rows = r["generators"].numbers["results"]
            share = {_short(row): next(h["mc_fraction"] for h in row["hits"] if h["k"] == k) for row in rows}
            inside = [f"{label} {v:.3g}" for label, v in share.items() if v >= 0.5]
            outside = [label for label, v in share.items() if v == 0]
            sentences.append(
                f"{m.label}: share of generated points inside the data box (each component within mu +- {k:g} "
                f"half-widths): {', '.join(inside) or 'no generator reaches 0.5'}"
                + (f"; none at all for {', '.join(outside)}." if outside else ".")
            )
            if "decoded_grid" in r["generators"].figures:
                figures.append(r["generators"].figures["decoded_grid"])
        if "judge" in r:
            rows = sorted(r["judge"].numbers["rows"], key=lambda row: row["judge_frechet"])
            by_label = {row["label"]: row["judge_frechet"] for row in rows}
            generated = [row for row in rows if row["label"] not in REFERENCE_ROWS]
            sentences.append(
                f"{m.label}: judge Frechet distance to held-out images {generated[0]['judge_frechet']:.3g} for "
                f"{generated[0]['label']} (the closest generator), {generated[-1]['judge_frechet']:.3g} for "
                f"{generated[-1]['label']}; against {by_label['reconstructions']:.3g} for reconstructions and "
                f"{by_label['real vs real']:.3g} between two halves of the held-out images."
            )
        if "intrinsic_dimension" in r:
            rows = r["intrinsic_dimension"].numbers["rows"]
            z, null = rows["z-points"][0], rows["fitted full Gaussian"][0]
            sentences.append(
                f"{m.label}: TwoNN intrinsic dimension of the z-points {z['dimension']:.3g} at the smallest scale, "
                f"against {null['dimension']:.3g} for a Gaussian with their covariance."
            )
    return sentences, figures
