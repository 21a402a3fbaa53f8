"""The studies (the demo and the research studies), each a smoke and a full setting and one function that runs
its models through the evaluators and composes their views (ae_jax.studies.views); ae_jax.studies.framework
runs them (`ae-jax study NAME`).

Smoke settings use the tiny preset (embedded faces at 16px) and finish in seconds, so the test suite runs every
study; full settings are the study's real ones (CelebA via `--set data.dir=...`, several epochs, all points).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import sharding
from ae_jax.config import Config, GeneratorSpec
from ae_jax.data import datasets
from ae_jax.data.faces import FACE_FACTORS
from ae_jax.evaluators import registry
from ae_jax.evaluators.judge import REFERENCE_ROWS
from ae_jax.numerics import hits, stats
from ae_jax.numerics.samplers import UniformBoxSampler
from ae_jax.report import pages, plots
from ae_jax.runtime import make_key
from ae_jax.studies import claims as claims_registry
from ae_jax.studies import pipeline, trend, views
from ae_jax.studies.claims import INCONCLUSIVE, POST_I, REFUTED, SUPPORTED
from ae_jax.studies.framework import (
    STUDIES,
    Study,
    StudyOutput,
    check_overrides,
    model_config,
    overrides_for,
    register,
    run_study,
    studies_named,
)

__all__ = ["STUDIES", "check_overrides", "overrides_for", "run_study", "studies_named"]

MODEL_EVALUATORS = ("reconstruction", "distribution", "generators")


def _uniform_specs(bounds) -> tuple[GeneratorSpec, ...]:
    return tuple(GeneratorSpec.of("uniform", bound=b) for b in bounds)


def random_points(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Study 1: decode uniform z-points of growing bound from a plain AE, beside reconstructions."""
    config = model_config(settings["ae"], settings, overrides)
    m = pipeline.study_model(config, out, MODEL_EVALUATORS)
    rows = views.rows(m, "generators")
    grid = m.results["generators"].figures["decoded_grid"]
    text = f"{m.label}, {config.train.epochs} epochs; uniform z in [-b, b]^{config.model.z_dim}"
    section = [
        pages.paragraph(text),
        pages.figure(grid, "decoded uniform points and reconstructions"),
        pages.table(rows),
    ]
    return StudyOutput([("Random points in a plain AE's latent space", section)], [m], {"random_points": rows})


def component_distributions(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Study 2: component distributions of two architectures, uniform hit fractions vs b and k, radii."""
    models = []
    for preset in settings["architectures"]:
        config = model_config(preset, settings, overrides)
        models.append(pipeline.study_model(config, os.path.join(out, config.name), MODEL_EVALUATORS))
    rows = [views.headline(m) for m in models]
    sections = [s for m in models for s in views.model_sections(m)]
    return StudyOutput(
        [("Component number distributions: summary", [pages.table(rows)])] + sections, models, {"summary_counts": rows}
    )


def filaments(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Study 3: radius histograms, t-SNE of raw and PCA-reduced z at several point counts, PCA zooms, and the
    TwoNN and MLE intrinsic dimension of the z-points against a fitted-Gaussian and a column-shuffled null."""
    config = model_config(settings["ae"], settings, overrides)
    main = pipeline.study_model(config, os.path.join(out, "main"), ("distribution", "intrinsic_dimension"))
    n_points = main.results["distribution"].numbers["n_points"]
    shown = min(config.distribution.tsne_points or n_points, n_points)
    models = []
    for n in sorted({min(n or n_points, n_points) for n in settings["tsne_points"]} - {shown}):
        arm = model_config(settings["ae"], settings, overrides, **{"distribution.tsne_points": n})
        models.append(pipeline.study_model(arm, os.path.join(out, f"tsne_{n}"), ("distribution",)))
    parts = []
    for m in models + [main]:
        a = m.results["distribution"]
        points = a.numbers["tsne"]["points"]
        parts.append(pages.paragraph(f"t-SNE on {points} points; radius peak {a.numbers['radius']['peak']:.3f}"))
        keep = ("tsne", "pca_1_2_zoom", "radius", "original_axes")
        parts += [pages.figure(p, f"{f} ({points} points)") for f, p in a.figures.items() if f.startswith(keep)]
    dimension = views.model_sections(main)[-1]
    return StudyOutput([("Filaments and voids", parts), dimension], [main, *models], {})


def ae_vs_vae(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Study 4: AE and tiny-KL VAE on the same data and architecture, every figure and table side by side."""
    configs = ae_and_vae(settings, overrides)
    judge_dir = pipeline.ensure_judge(configs[0], out) if settings.get("judge", True) else None
    names = MODEL_EVALUATORS + (("judge",) if judge_dir else ())
    models = [pipeline.study_model(c, os.path.join(out, c.name), names, judge_dir) for c in configs]
    side = [views.headline(m) for m in models]
    tables = {"ae_vs_vae": side, **_evaluator_tables(models, "ae_vs_vae_", ("generators", "judge"))}
    sections = [("AE vs tiny-KL VAE", [pages.table(rows) for rows in tables.values()])]
    sections += [s for m in models for s in views.model_sections(m)]
    return StudyOutput(sections, models, tables)


CLAIM_EVALUATORS = ("reconstruction", "distribution", "generators", "intrinsic_dimension")


def ae_and_vae(settings: dict, overrides: list[str]) -> list[Config]:
    """The study's plain AE and tiny-KL VAE (its settings' "ae" and "vae" presets)."""
    return [model_config(settings[k], settings, overrides) for k in ("ae", "vae")]


def claims(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """The posts' claims (ae_jax.studies.claims): case1 AE and its tiny-KL VAE at the posts' length, 24 epochs,
    measured by every evaluator that records a claim's evidence; run it with --seeds 3 for intervals across seeds.
    docs/results.md is written from it."""
    models = [
        pipeline.study_model(c, os.path.join(out, c.name), CLAIM_EVALUATORS) for c in ae_and_vae(settings, overrides)
    ]
    sections = [s for m in models for s in views.model_sections(m)]
    return StudyOutput(sections, models, {"claims_models": [views.headline(m) for m in models]})


def _evaluator_tables(models, prefix: str, names) -> dict[str, list[dict]]:
    """Each named evaluator's rows over the models (those that ran it), as tables <prefix><name>."""
    tables = {prefix + name: [row for m in models for row in views.rows(m, name)] for name in names}
    return {stem: rows for stem, rows in tables.items() if rows}


def ablations(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Study 5: one table per scripted sweep (z_dim, KL weight, epochs, architecture, task); each arm is its own
    run (keyed by its config), its distribution measured and a uniform box's hit fractions beside it."""
    sections, models, tables = [], [], {}
    bound = settings["ablation_bound"]
    for axis, values in settings["sweeps"].items():
        rows, arms = [], []
        for value, label in zip(values, arm_names(axis, values)):
            extra = dict(value) if isinstance(value, dict) else {axis: value}
            preset = extra.pop("preset", settings["ae"])
            name = f"ablation_{axis.replace('.', '_')}_{'_'.join(str(v) for v in extra.values()) or preset}"
            arms.append((label, preset, model_config(preset, settings, overrides, name=name, **extra)))
        pipeline.train_arms_together([config for _, _, config in arms])  # same-shape axes: one program
        for label, preset, config in arms:
            evals = ("reconstruction", "distribution")
            m = pipeline.study_model(config, os.path.join(out, config.name), evals)
            models.append(m)
            rows.append(
                {
                    axis: label,
                    "preset": preset,
                    "config hash": m.key[:8],
                    **{k: v for k, v in views.headline(m).items() if k != "model"},
                    "median FWHM": float(np.median(m.results["distribution"].numbers["fwhm"])),
                    **uniform_hits(m, bound),
                }
            )
        stem = f"ablation_{axis.replace('.', '_')}"
        tables[stem] = rows
        sections.append((f"Ablation over {axis}", [pages.table(rows)]))
    return StudyOutput(sections, models, tables)


def arm_names(axis: str, values) -> list[str]:
    """Each arm named by the settings that differ between the axis's arms, e.g. "kl_weight=0.01" (a setting
    is named by its last dotted part)."""
    settings = [dict(v) if isinstance(v, dict) else {axis: v} for v in values]
    keys = dict.fromkeys(k for s in settings for k in s)
    differing = [k for k in keys if len({repr(s.get(k)) for s in settings}) > 1] or list(keys)

    def text(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    return [", ".join(f"{k.rpartition('.')[2]}={text(s[k])}" for k in differing if k in s) for s in settings]


UNIFORM_HIT_POINTS = 20_000


def uniform_hits(m: pipeline.ModelResult, bound: float, ks=(2.0, 3.0)) -> dict:
    """MC hit fractions of a uniform box generator at the given bound in the model's data box (the mu and
    FWHM its distribution evaluator measured)."""
    a = m.results["distribution"].numbers
    sampler = UniformBoxSampler(bound=bound, z_dim=a["z_dim"])
    rows = hits.hit_table([sampler], a["mu"], a["fwhm"], ks, make_key(m.config.seed), num_samples=UNIFORM_HIT_POINTS)
    shares = {f"uniform b={bound:g} hits k={r['k']:g}": pages.Share(r["mc_hits"], r["mc_samples"]) for r in rows}
    return {**shares, "uniform points": UNIFORM_HIT_POINTS}


def intrinsic_dimension(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Study 6: TwoNN dimension vs scale of the z-points, checked on the faces' known factors first."""
    config = model_config(settings["ae"], settings, overrides)
    m = pipeline.study_model(config, out, ("intrinsic_dimension",))
    return StudyOutput(views.model_sections(m), [m], {})


VAE_PRIOR_KL_WEIGHTS = (1e-6, 1e-2, 1e-1, 1.0)
VAE_PRIOR = GeneratorSpec.of("isotropic", mu=0, sigma=1)  # the VAE's prior, N(0, I)
AE_FITTED = (GeneratorSpec("full"), GeneratorSpec.of("mixture", n_components=10))  # the AE's fitted generators


def vae_prior_configs(settings: dict, overrides: list[str]) -> list[Config]:
    """The plain AE (its fitted generators) and one VAE per KL weight of settings["kl_weights"] (its prior)."""
    ae = model_config(settings["ae"], settings, overrides, **{"generators.specs": AE_FITTED})
    vaes = [
        model_config(
            settings["vae"],
            settings,
            overrides,
            name=f"{settings['ae']}_vae_kl_{weight:g}",
            **{"model.kl_weight": weight, "generators.specs": (VAE_PRIOR,)},
        )
        for weight in settings["kl_weights"]
    ]
    return [ae, *vaes]


def vae_prior(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Post I's "VAEs help": N(0, I) z-points decoded through the VAE at each KL weight and judged (Frechet
    distance, precision, recall, with intervals) beside the plain AE's fitted full Gaussian and Gaussian mixture;
    each VAE's active units, aggregate posterior's KL to the prior and total correlation."""
    ae, *vaes = vae_prior_configs(settings, overrides)
    pipeline.train_arms_together(vaes)
    judge_dir = pipeline.ensure_judge(ae, out)
    models = [pipeline.study_model(ae, os.path.join(out, ae.name), ("generators", "judge"), judge_dir)]
    models += [
        pipeline.study_model(c, os.path.join(out, c.name), ("generators", "judge", "vae_latent"), judge_dir)
        for c in vaes
    ]
    table = prior_rows(models)
    latent = _evaluator_tables(models, "vae_prior_", ("vae_latent",))
    what = (
        "Post I: VAEs 'significantly increase the probability to hit a meaningful z-point in latent space - if you "
        'chose points around the origin within a distance of "1" per coordinate\'. Each VAE decodes z-points drawn '
        "from its prior N(0, I); the plain AE decodes its best fitted generators; the judge scores each against "
        "held-out images (95% bootstrap intervals; real vs real is the floor)."
    )
    parts = [pages.paragraph(what), pages.table(table), *map(pages.paragraph, prior_findings(models))]
    sections = [("VAEs help? The prior through each VAE against the AE's fitted generators", parts)]
    sections += [("VAE latent against its prior, by KL weight", [pages.table(rows) for rows in latent.values()])]
    sections += [s for m in models for s in views.model_sections(m)]
    return StudyOutput(sections, models, {"vae_prior": table, **latent})


def _kl_weight(m: pipeline.ModelResult) -> float | str:
    return m.config.model.kl_weight if m.config.model.variational else "- (plain AE)"


def prior_rows(models) -> list[dict]:
    """The judged generators of every model (model, kl_weight, generator, FD, precision, recall with their
    intervals), then real vs real (the floor, the same held-out images and judge for every model)."""
    rows = [
        {"model": m.label, "kl_weight": _kl_weight(m), **{k: v for k, v in row.items() if k != "model"}}
        for m in models
        for row in views.rows(m, "judge")
        if row["generator"] not in REFERENCE_ROWS
    ]
    floor = [row for row in views.rows(models[0], "judge") if row["generator"] == "real vs real"]
    return rows + [{**row, "model": "held-out images", "kl_weight": "-"} for row in floor]


def _fd(row: dict) -> str:
    return f"{row['judge_frechet']:.3g} [{row['judge_frechet_low']:.3g}, {row['judge_frechet_high']:.3g}]"


PRIOR_RELATION = {
    SUPPORTED: "below it: closer to the held-out images",
    REFUTED: "above it: further from the held-out images",
    INCONCLUSIVE: "overlapping it: not told apart at this sample size",
}


def prior_findings(models) -> list[str]:
    """Each VAE's N(0, I) Frechet distance against the plain AE's closest fitted generator's (models[0]): below,
    above, or overlapping it, by the rule of post I's claim (claims.VAES_HELP)."""
    ae, *vaes = models
    ae_rows = claims_registry.generated_rows(ae.results["judge"].numbers)
    sentences = []
    for m in vaes:
        for r in claims_registry.generated_rows(m.results["judge"].numbers):
            e = claims_registry.prior_evidence(ae_rows, r)
            sentences.append(
                f"kl_weight={m.config.model.kl_weight:g}: {r['label']} through {m.label} has judge FD {_fd(r)}, "
                f"{PRIOR_RELATION[claims_registry.VAES_HELP.rule(e)]} ({e.null_name}: {e.null:.3g} "
                f"[{e.null_interval[0]:.3g}, {e.null_interval[1]:.3g}])."
            )
    return sentences


# ---------------------------------------------------------------------------------------------
# The demo.

DEMO_EVALUATORS = ("reconstruction", "distribution", "generators", "judge", "intrinsic_dimension")


def demo(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """From nothing to one page on the embedded faces: a plain AE and a tiny-KL VAE, the judge trained on the
    faces' known factors, and for both models every evaluator: reconstruction, z-point distribution,
    generators with decoded grids and judge scores, intrinsic dimension against the true factors."""
    configs = [model_config(settings[k], settings, overrides) for k in ("ae", "vae")]
    timings = []

    def timed(label, fn, *args, **kw):
        t0 = time.perf_counter()
        value = fn(*args, **kw)
        timings.append({"stage": label, "seconds": time.perf_counter() - t0})
        return value

    judge_dir = timed("judge", pipeline.ensure_judge, configs[0], out)
    models = [
        timed(c.name, pipeline.study_model, c, os.path.join(out, c.name), DEMO_EVALUATORS, judge_dir) for c in configs
    ]
    timings.append({"stage": "total", "seconds": sum(t["seconds"] for t in timings)})
    ae, vae = configs
    side = [views.headline(m) for m in models]
    tables = {"ae_vs_vae": side, **_evaluator_tables(models, "", ("generators", "judge")), "timings": timings}
    what = (
        f"A plain autoencoder and a VAE whose KL term weighs kl_weight={vae.model.kl_weight:g} of the per-image "
        f"reconstruction loss, trained on {ae.data.num_images} procedurally rendered faces ({ae.data.image_size}px, "
        f"{len(FACE_FACTORS)} known factors: {', '.join(FACE_FACTORS)}). Both encode the training set into z-points "
        "whose distribution is measured; random z-points from several generators are compared with the region the "
        "encoder fills (each component within mean +- k FWHM, the posts' 'half-width') and decoded. The judge is a "
        "small conv net "
        "trained on the faces' factors; its features give Frechet distances and k-NN precision of decoded samples "
        "against real held-out faces."
    )
    sections = [
        ("What this is", [pages.paragraph(what)]),
        ("AE vs tiny-KL VAE", [pages.table(rows) for stem, rows in tables.items() if stem != "timings"]),
        *[section for m in models for section in views.model_sections(m)],
        ("Timings (this machine)", [pages.table(timings)]),
    ]
    return StudyOutput(sections, models, tables)


_DEMO_FULL = {
    "data.num_images": 4096,
    "data.valid_fraction": 0.5,  # 2,048 held-out faces: the judge scores generators.judge_images = 1,024
    "train.epochs": 12,
    "distribution.tsne": True,
    "distribution.tsne_points": 2048,
    "distribution.tsne_inputs": (0, 10),
    "generators.n": 20_000,
}
_DEMO = Study(
    "demo",
    demo.__doc__,
    demo,
    smoke=dict(ae="tiny", vae="tiny_vae_tiny_kl", overrides={}),
    full=dict(ae="faces", vae="faces_vae_tiny_kl", overrides=_DEMO_FULL),
    evaluators=DEMO_EVALUATORS,
)


# ---------------------------------------------------------------------------------------------

_SMOKE = dict(ae="tiny", vae="tiny_vae_tiny_kl", overrides={})
_FULL = {
    "train.epochs": 10,
    "generators.n": 100_000,
    "judge.epochs": 5,
    "eval.report_ks": (2.0, 3.0, 12.0),
    "distribution.tsne": True,
}
_FULL_CELEBA = dict(ae="case1", vae="case1_vae_tiny_kl", overrides=_FULL)
_GAUSSIANS = (GeneratorSpec.of("isotropic", mu=0, sigma=1), GeneratorSpec("diagonal"))
_STUDY2_BOUNDS = (1, 1.5, 2, 3, 5, 10, 12)

for study in [
    _DEMO,
    Study(
        "random_points",
        random_points.__doc__,
        random_points,
        smoke=dict(_SMOKE, overrides={"generators.specs": _uniform_specs((1, 20))}),
        full=dict(_FULL_CELEBA, overrides={**_FULL, "generators.specs": _uniform_specs((1, 2, 3, 5, 10, 20))}),
        evaluators=MODEL_EVALUATORS,
    ),
    Study(
        "component_distributions",
        component_distributions.__doc__,
        component_distributions,
        smoke=dict(
            _SMOKE, architectures=("tiny",), overrides={"generators.specs": _uniform_specs((1, 3)) + _GAUSSIANS}
        ),
        full=dict(
            _FULL_CELEBA,
            architectures=("case1", "case2"),
            overrides={**_FULL, "generators.specs": _uniform_specs(_STUDY2_BOUNDS) + _GAUSSIANS},
        ),
        evaluators=MODEL_EVALUATORS,
    ),
    Study(
        "filaments",
        filaments.__doc__,
        filaments,
        smoke=dict(
            _SMOKE, tsne_points=(128,), overrides={"distribution.tsne": True, "distribution.tsne_inputs": (0, 2)}
        ),
        full=dict(_FULL_CELEBA, tsne_points=(20_000, 80_000, 0)),
        evaluators=("distribution", "intrinsic_dimension"),
    ),
    Study(
        "ae_vs_vae",
        ae_vs_vae.__doc__,
        ae_vs_vae,
        smoke=dict(_SMOKE, judge=False),
        full=dict(_FULL_CELEBA),
        evaluators=(*MODEL_EVALUATORS, "judge"),
        configs=ae_and_vae,
    ),
    Study(
        "ablations",
        ablations.__doc__,
        ablations,
        smoke=dict(_SMOKE, ablation_bound=1.5, sweeps={"model.z_dim": (4, 8), "data.task": ("reconstruct", "denoise")}),
        full=dict(
            _FULL_CELEBA,
            # 3 epochs per arm (the epochs axis aside): a size that finishes on a 2-core CPU; every arm's
            # distribution, without its t-SNE maps
            overrides={**_FULL, "train.epochs": 3, "distribution.tsne": False},
            ablation_bound=1.5,
            sweeps={
                "model.z_dim": (16, 64, 256, 512),
                "model.kl_weight": tuple(
                    {"model.variational": True, "model.kl_weight": w} for w in (0, 1e-6, 1e-4, 1e-2, 1)
                ),
                "train.epochs": (1, 3, 10),
                "architecture": ({"preset": "case1"}, {"preset": "case2"}),
                "data.task": ("reconstruct", {"data.task": "denoise", "data.drop_rate": 0.1}, "recolor"),
                "model.init": ("flax", "keras"),
            },
        ),
        evaluators=("reconstruction", "distribution"),
    ),
    Study(
        "claims",
        claims.__doc__,
        claims,
        smoke=dict(_SMOKE),
        full=dict(_FULL_CELEBA, overrides={**_FULL, "train.epochs": 24, "distribution.tsne": False}),
        evaluators=CLAIM_EVALUATORS,
        configs=ae_and_vae,
    ),
    Study(
        "intrinsic_dimension",
        intrinsic_dimension.__doc__,
        intrinsic_dimension,
        smoke=dict(_SMOKE),
        full=dict(ae="faces", overrides={"data.num_images": 20_000, "train.epochs": 15}),
        evaluators=("intrinsic_dimension",),
    ),
    Study(
        "vae_prior",
        vae_prior.__doc__,
        vae_prior,
        # smoke: the smallest and largest KL weight, and few bootstrap resamples of the judge's scores
        smoke=dict(_SMOKE, kl_weights=(1e-6, 1.0), overrides={"generators.judge_resamples": 20}),
        full=dict(_FULL_CELEBA, kl_weights=VAE_PRIOR_KL_WEIGHTS, overrides={**_FULL, "train.epochs": 24}),
        evaluators=("generators", "judge", "vae_latent"),
        configs=vae_prior_configs,
    ),
]:
    register(study)


# ---------------------------------------------------------------------------------------------
# How the latent space changes with training (issue 30).

TREND_EVALUATORS = ("reconstruction", "distribution")


def training_trend(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """How the latent space changes with training: the AE over a grid of training-set sizes (data.num_images, 0:
    all) and epochs, each grid point its own keyed run; its widths, counts, radius peak, value range, held-out MSE
    and axis alignment against image presentations, the median FWHM and the counts fitted in log-log, and whether
    and when the author's regime would be reached (ae_jax.studies.trend)."""
    configs = [
        model_config(
            settings["ae"],
            settings,
            overrides,
            name=f"trend_{images or 'all'}x{epochs}",
            **{"data.num_images": images, "train.epochs": epochs},
        )
        for images in settings["images"]
        for epochs in settings["epochs"]
    ]
    for config in configs:  # a size the data does not hold is refused before any grid point trains
        datasets.check_source(config.data, config.train.batch_size, exact_size=True)
    models = [pipeline.study_model(c, os.path.join(out, c.name), TREND_EVALUATORS) for c in configs]
    rows = [trend.point_row(m, settings["aligned_axes"]) for m in models]
    sections, fits = trend.sections(rows, settings["aligned_axes"], out)
    return StudyOutput(sections, models, {"training_trend": rows, "training_trend_fits": fits})


register(
    Study(
        "training_trend",
        training_trend.__doc__,
        training_trend,
        smoke=dict(ae="tiny", overrides={}, images=(48, 96), epochs=(1, 2), aligned_axes=2),
        full=dict(
            ae="case1",
            # the same settings as the claims and ablation studies, so their case1 runs on every training image
            # (data.num_images=0) at 1, 3, 10 and 24 epochs are reused
            overrides={**_FULL, "distribution.tsne": False},
            images=(2400, 4800, 9600, 0),
            epochs=(1, 3, 10, 24),
            aligned_axes=20,
        ),
        evaluators=TREND_EVALUATORS,
    )
)


# ---------------------------------------------------------------------------------------------
# The remaining claims of the first post (issue 30 item 4).

POST_I_WORDS = {
    "z_dim": "For reconstruction of normal images [...] higher numbers of dimensions z_dim >= 512 gave visibly better "
    "results.",
    "denoise": "the reconstruction of test images of faces, which were almost totally obscured by the superimposition "
    "of statistical noise or the statistical removal of pixels",
    "mnist": "z_dim = 12 gives a really good reconstruction quality [...] z_dim=4 still gave an acceptable quality and "
    "even with z_dim = 2 most of test images were reconstructed well enough.",
}
ORDERING_RULE = (
    "Rule, written before any number: MSE must fall as z_dim grows. Each step up in z_dim is a paired bootstrap "
    "interval (95%, the same resampled held-out images for every model) of MSE(smaller z_dim) - MSE(larger z_dim): "
    "supported when every interval lies above 0, refuted when any lies below 0, else inconclusive. Held-out MSE is "
    "a weak proxy for the post's visual 'quality': it ranks the models, it does not say 'good' or 'acceptable'."
)


def _held_out_errors(m: pipeline.ModelResult) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-image MSE of the held-out images the reconstruction evaluator averages (its images, batches and keys,
    so their mean is its held-out MSE), and [clean, input, output] of the first train.grid_images of them."""
    from ae_jax.train import loop

    ctx = registry.RunContext(m.config, "", run_dir=m.config.run_dir)
    config, model, params = ctx.run()
    t = m.config.train
    images = ctx.real_images()[: t.eval_images or None]
    key = loop.run_keys(config)[2]
    mse_of = jax.jit(lambda p, b, k: loop.per_image_metrics(model, config, p, b, k, sample_z=False)["mse"])
    batches = datasets.ordered_batches(images, t.batch_size, sharding.batch_sharding(sharding.data_mesh()))
    errors = [np.asarray(mse_of(params, b, jax.random.fold_in(key, i)))[:n] for i, (b, n) in enumerate(batches)]
    shown = jax.device_get(loop.make_reconstruct_fn(model, config)(params, images[: t.grid_images], key))
    return np.concatenate(errors), [np.asarray(a) for a in shown]


def _resampled_means(errors: np.ndarray, resamples: int, seed: int):
    """(estimates (M,), resampled means (M, resamples)) of M models' per-image errors (M, n), every model resampled
    at the same image rows (paired)."""
    errors = jnp.asarray(errors)
    rows = stats.bootstrap_rows(make_key(seed), errors.shape[1], resamples)
    return errors.mean(axis=1), errors[:, rows].mean(axis=-1)


def ordering_verdict(intervals) -> str:
    """Each (low, high) interval of MSE(smaller z_dim) - MSE(larger z_dim): supported when all lie above 0,
    refuted when any lies below 0, else inconclusive (ORDERING_RULE)."""
    if any(high < 0 for _, high in intervals):
        return REFUTED
    return SUPPORTED if all(low > 0 for low, _ in intervals) else INCONCLUSIVE


def _first_post_part(
    configs, labels, settings: dict, out: str, stem: str
) -> tuple[list[pipeline.ModelResult], list[dict], np.ndarray, list[list[np.ndarray]]]:
    """Train the part's models (as arms of one program where they can be), run the reconstruction evaluator, and
    give (models, MSE rows with 95% bootstrap intervals over held-out images, resampled means, shown images)."""
    pipeline.train_arms_together(configs)
    models = [pipeline.study_model(c, os.path.join(out, c.name), ("reconstruction",)) for c in configs]
    errors, shown = zip(*map(_held_out_errors, models))
    estimates, resampled = _resampled_means(np.stack(errors), settings["resamples"], configs[0].seed)
    rows = []
    for m, label, estimate, draws, n in zip(models, labels, estimates, resampled, map(len, errors)):
        low, high = stats.interval_of(estimate, draws)
        rows.append(
            {
                stem: label,
                "run": m.key[:8],
                "held-out images": n,
                "held-out mse": float(estimate),
                "mse 95% low": low,
                "mse 95% high": high,
            }
        )
    return models, rows, np.asarray(resampled), list(shown)


def _ordering_rows(labels, estimates, resampled) -> list[dict]:
    """Each step up in z_dim (labels in growing z_dim): MSE(smaller) - MSE(larger) with its paired interval."""
    rows = []
    for i in range(len(labels) - 1):
        low, high = stats.interval_of(estimates[i] - estimates[i + 1], resampled[i] - resampled[i + 1])
        rows.append(
            {
                "difference": f"MSE({labels[i]}) - MSE({labels[i + 1]})",
                "estimate": float(estimates[i] - estimates[i + 1]),
                "95% low": low,
                "95% high": high,
            }
        )
    return rows


def _z_dim_section(part: str, configs, settings, out, title: str):
    """A part comparing z_dims: MSE table, the ordering rule's verdict, one figure (originals, then each model's
    decoding of the same held-out images)."""
    labels = [f"z_dim={c.model.z_dim}" for c in configs]
    models, rows, resampled, shown = _first_post_part(configs, labels, settings, out, "model")
    order = _ordering_rows(labels, [r["held-out mse"] for r in rows], resampled)
    verdict = ordering_verdict([(r["95% low"], r["95% high"]) for r in order])

    figure_rows = [("held-out original", shown[0][0])] + [(f"{lab} decoding", s[2]) for lab, s in zip(labels, shown)]
    path = plots.image_rows_png(figure_rows, os.path.join(out, f"first_post_{part}.png"), title)
    parts = [
        pages.paragraph(f"Post I ({POST_I}): '{POST_I_WORDS[part]}'"),
        pages.paragraph(ORDERING_RULE),
        pages.paragraph(f"Verdict: MSE falls as z_dim grows ({', '.join(labels)}): {verdict}."),
        pages.table(rows),
        pages.table(order),
        pages.figure(path, f"the same held-out images: originals, then each model's decoding ({title})"),
    ]
    return models, parts, {f"first_post_{part}": rows, f"first_post_{part}_ordering": order}


def first_post(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Post I's z_dim claims: z_dim 512 against 256 on the faces, MNIST at z_dim 2, 4 and 12; each model's held-out
    MSE with a 95% bootstrap interval over images, the ordering rule's verdict and figures of the same held-out
    images (its denoising claim: the denoising study)."""
    z_configs = [
        model_config(settings["ae"], settings, overrides, name=f"first_post_z{z}", **{"model.z_dim": z})
        for z in settings["z_dims"]
    ]
    z_models, z_parts, z_tables = _z_dim_section("z_dim", z_configs, settings, out, "z_dim on the faces")

    mnist_overrides = [o for o in overrides if o.split("=", 1)[0].strip() != "data.dir"]  # --set data.dir: the faces'
    mnist_data = {"data.dir": settings["mnist_dir"]} if settings["mnist_dir"] else {}
    m_configs = [
        model_config(
            settings["mnist"],
            settings,
            mnist_overrides,
            name=f"first_post_mnist_z{z}",
            **mnist_data,
            **{"model.z_dim": z, **settings["mnist_train"]},
        )
        for z in settings["mnist_z_dims"]
    ]
    m_models, m_parts, m_tables = _z_dim_section("mnist", m_configs, settings, out, "MNIST by z_dim")
    sections = [("Post I: z_dim 512 against 256", z_parts), ("Post I: MNIST at z_dim 2, 4 and 12", m_parts)]
    return StudyOutput(sections, z_models + m_models, {**z_tables, **m_tables})


def denoising(settings: dict, out: str, overrides: list[str]) -> StudyOutput:
    """Post I's denoising claim: the AE trained to map corrupted faces to clean ones, on held-out images with 80% of
    the pixels dropped and with heavy noise; each model's held-out MSE against the clean image with a 95% bootstrap
    interval over images, and a figure of the same held-out images (clean, corrupted input, output)."""
    arms = settings["denoise_arms"]
    labels = arm_names("data.task", arms)
    configs = [
        model_config(settings["ae"], settings, overrides, name=f"first_post_denoise_{i}", **arm)
        for i, arm in enumerate(arms)
    ]
    models, rows, _, shown = _first_post_part(configs, labels, settings, out, "corruption")
    figure_rows = [("clean", shown[0][0])]
    figure_rows += [row for lab, s in zip(labels, shown) for row in ((f"input: {lab}", s[1]), (f"output: {lab}", s[2]))]
    path = plots.image_rows_png(figure_rows, os.path.join(out, "denoising.png"), "denoising held-out images")
    parts = [
        pages.paragraph(
            f"Post I ({POST_I}): '{POST_I_WORDS['denoise']}'. Held-out MSE of the output against the clean image."
        ),
        pages.table(rows),
        pages.figure(path, "the same held-out images: clean, corrupted input, output, per corruption"),
    ]
    return StudyOutput([("Post I: denoising almost totally obscured images", parts)], models, {"denoising": rows})


_FIRST_POST_FULL = {**_FULL, "train.epochs": 24, "distribution.tsne": False}  # the claims study's training
register(
    Study(
        "first_post",
        first_post.__doc__,
        first_post,
        smoke=dict(
            ae="tiny",
            mnist="tiny",
            mnist_dir="",
            overrides={},
            z_dims=(4, 8),
            mnist_z_dims=(2, 4, 12),
            mnist_train={},
            resamples=200,
        ),
        full=dict(
            ae="case1",
            mnist="mnist",
            mnist_dir="../shared/data/mnist",
            overrides=_FIRST_POST_FULL,
            z_dims=(256, 512),
            mnist_z_dims=(2, 4, 12),
            # post I states no MNIST training length; 5 epochs of its 60,000 images (300,000 presentations) keep
            # the part within minutes on a CPU, every z_dim trained alike
            mnist_train={"train.epochs": 5},
            resamples=1000,
        ),
        evaluators=("reconstruction",),
    )
)
_DENOISE_ARMS = (
    {"data.task": "denoise", "data.drop_rate": 0.8, "data.noise_std": 0.0},
    {"data.task": "denoise", "data.drop_rate": 0.0, "data.noise_std": 0.5},
)
register(
    Study(
        "denoising",
        denoising.__doc__,
        denoising,
        smoke=dict(ae="tiny", overrides={}, denoise_arms=_DENOISE_ARMS, resamples=200),
        full=dict(ae="case1", overrides=_FIRST_POST_FULL, denoise_arms=_DENOISE_ARMS, resamples=1000),
        evaluators=("reconstruction",),
    )
)
