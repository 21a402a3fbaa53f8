"""`ae-jax demo`: from nothing to one results page on the embedded faces, in minutes on a 2-core CPU.

Trains a plain AE and a tiny-KL VAE on procedurally rendered faces, trains the judge on the faces'
known factors, then for both models encodes the training set, measures the z-point distribution,
runs the generator sweep with decoded grids and judge scores, and estimates the intrinsic dimension
of the z-points against the true number of factors.
"""

from __future__ import annotations

import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ae_jax import config as config_lib  # noqa: E402
from ae_jax import data, intrinsic, pipeline, plots, report
from ae_jax.faces import FACE_FACTORS  # noqa: E402

FULL = dict(
    overrides=["data.num_images=4096", "train.epochs=12"],
    size=pipeline.StudySize(tsne=True, tsne_points=2048, tsne_pca=(None, 10), sample_n=20_000, judge_epochs=6),
)
QUICK = dict(
    overrides=[
        "data.num_images=256",
        "data.image_size=16",
        "train.epochs=1",
        "train.batch_size=32",
        "train.eval_images=64",
    ],
    size=pipeline.StudySize(tsne=False, tsne_points=0, sample_n=500, judge_epochs=1),
)


def intrinsic_dimension_figure(rows_by_label: dict[str, list[dict]], n_factors: int | None, path: str) -> str:
    """TwoNN dimension against scale, one line per point set, and the true number of factors when known."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, rows in rows_by_label.items():
        ax.plot([r["scale_r2"] for r in rows], [r["dimension"] for r in rows], "o-", label=label)
    if n_factors is not None:
        ax.axhline(n_factors, color="k", ls="--", lw=1, label=f"true number of factors ({n_factors})")
    ax.set(
        xscale="log",
        xlabel="scale: median 2nd-neighbour distance (subsets N, N/2, N/4, ...)",
        ylabel="TwoNN intrinsic dimension",
        title="Intrinsic dimension vs scale",
    )
    ax.legend(fontsize=8)
    return plots.save_figure(fig, path)


def run_demo(out_dir: str = "results/demo", quick: bool = False, log=print) -> str:
    """Run the whole study on the embedded faces; returns the path of the results page."""
    start = time.perf_counter()
    setting = QUICK if quick else FULL
    size: pipeline.StudySize = setting["size"]
    common = setting["overrides"] + [f"workdir={os.path.join(out_dir, 'runs')}"]
    configs = [config_lib.load("faces", common), config_lib.load("faces_vae_tiny_kl", common)]
    timings = []

    def timed(label, fn, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        timings.append({"stage": label, "seconds": time.perf_counter() - t0})
        return out

    judge_dir = timed(
        "judge", pipeline.ensure_judge, configs[0], os.path.join(out_dir, "judge"), size.judge_epochs, log
    )
    results = [
        timed(c.name, pipeline.study_model, c, os.path.join(out_dir, c.name), size, judge_dir=judge_dir, log=log)
        for c in configs
    ]

    def dimension_rows():
        factors = data.load_split(configs[0].data, "train", configs[0].seed).labels
        rows = {"true factors": intrinsic.dimension_vs_scale(factors, min_points=32)}
        for c in configs:
            rows[f"z-points of {c.name}"] = intrinsic.dimension_vs_scale(
                pipeline.ensure_encoded(c, log=log), min_points=32
            )
        return rows

    dimension = timed("intrinsic dimension", dimension_rows)
    dimension_png = intrinsic_dimension_figure(
        dimension, len(FACE_FACTORS), os.path.join(out_dir, "intrinsic_dimension.png")
    )
    timings.append({"stage": "total", "seconds": time.perf_counter() - start})
    sections = [
        (
            "What this is",
            [
                report.paragraph(
                    f"A plain autoencoder and a VAE whose KL term weighs kl_weight={configs[1].model.kl_weight:g} "
                    "of the "
                    f"per-image reconstruction loss, trained on {configs[0].data.num_images} procedurally "
                    "rendered faces "
                    f"({configs[0].data.image_size}px, {len(FACE_FACTORS)} known factors: {', '.join(FACE_FACTORS)}). "
                    "Both encode the training set into z-points whose distribution is measured; random z-points from "
                    "several generators are compared with the region the encoder fills (each component within "
                    "mean +- k "
                    "half-widths) and decoded. The judge is a small conv net trained on the faces' factors; its "
                    "features give Frechet distances and k-NN precision of decoded samples against real held-out faces."
                    + (" QUICK MODE: tiny sizes, numbers are not meaningful." if quick else "")
                )
            ],
        ),
        (
            "AE vs tiny-KL VAE",
            [report.table([pipeline.headline(r) for r in results])]
            + [report.table(sum((pipeline.sweep_rows(r, k) for r in results), [])) for k in (2.0, 3.0)],
        ),
        *[section for r in results for section in pipeline.model_sections(r)],
        (
            "Intrinsic dimension",
            [
                report.paragraph(
                    "TwoNN estimates on nested random subsets; fewer points probe larger scales. The faces are drawn "
                    f"from {len(FACE_FACTORS)} independent factors, the dimension the z-points should show at scales "
                    "where the encoder is smooth."
                ),
                report.table([dict(set=k, **r) for k, rows in dimension.items() for r in rows]),
                report.figure(dimension_png, "intrinsic dimension vs scale"),
            ],
        ),
        ("Timings (this machine)", [report.table(timings)]),
    ]
    page = report.write_page(
        os.path.join(out_dir, "index.html"),
        "ae_jax demo: latent space of an AE and a tiny-KL VAE on embedded faces",
        sections,
    )
    log(f"demo finished in {timings[-1]['seconds']:.0f} s")
    return page
