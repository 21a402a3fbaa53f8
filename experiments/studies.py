"""The study's experiments: each a config (smoke and full size) and a function; `run.py` runs them.

Smoke sizes use the embedded faces at 16px and finish in seconds to a minute, so the test suite runs every
study; full sizes are the study's real settings (CelebA via `--data-dir`, several epochs, all points).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable

import numpy as np

from ae_jax import config as config_lib
from ae_jax import data, encode, hits, intrinsic, pipeline, report, samplers, stats
from ae_jax.demo import intrinsic_dimension_figure
from ae_jax.faces import FACE_FACTORS
from ae_jax.runtime import make_key

SMOKE_DATA = ["data.image_size=16", "data.num_images=256", "train.batch_size=32", "train.eval_images=64"]
SMOKE_SIZE = pipeline.StudySize(
    tsne=False, tsne_points=0, tsne_kw=(("n_iter", 30), ("early_exaggeration_iter", 20)), sample_n=500, judge_epochs=1
)
FULL_SIZE = pipeline.StudySize(tsne=True, tsne_points=20_000, sample_n=100_000, judge_epochs=5)


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    description: str
    run: Callable[[dict, str, list[str]], list[tuple[str, list[str]]]]  # (params, out dir, overrides) -> sections
    smoke: dict
    full: dict


def _config(preset: str, params: dict, overrides: list[str], **extra: str) -> config_lib.Config:
    items = list(params["overrides"]) + [f"{k}={v}" for k, v in extra.items()] + list(overrides)
    return config_lib.load(preset, items)


def _write_table(rows: list[dict], path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _model(config: config_lib.Config, out: str, params: dict, **kw) -> dict:
    """pipeline.study_model with the analysis shared by every study of the same output root."""
    return pipeline.study_model(
        config,
        os.path.join(out, config.name) if kw.pop("per_model_dir", True) else out,
        params["size"],
        analysis_dir=os.path.join(os.path.dirname(out), "analysis", config.name),
        **kw,
    )


def _uniform_specs(bounds) -> list[tuple[str, dict]]:
    return [("uniform", {"bound": float(b)}) for b in bounds]


# ---------------------------------------------------------------------------------------------


def random_points(params: dict, out: str, overrides: list[str]):
    """Study 1: decode uniform z-points of growing bound from a plain AE, beside reconstructions."""
    config = _config(params["ae"], params, overrides)
    result = _model(config, out, params, specs=_uniform_specs(params["bounds"]), per_model_dir=False)
    rows = pipeline.sweep_rows(result, 2.0) + pipeline.sweep_rows(result, 3.0)
    _write_table(rows, os.path.join(out, "random_points.csv"))
    return [
        (
            "Random points in a plain AE's latent space",
            [
                report.paragraph(
                    f"{config.name}, {config.train.epochs} epochs; uniform z in [-b, b]^{config.model.z_dim}"
                ),
                report.figure(
                    result["sampling"]["figures"]["decoded_grid"], "decoded uniform points and reconstructions"
                ),
                report.table(rows),
            ],
        )
    ]


def component_distributions(params: dict, out: str, overrides: list[str]):
    """Study 2: component distributions of two architectures, uniform hit fractions vs b and k, radii."""
    sections, rows = [], []
    specs = _uniform_specs(params["bounds"]) + [("isotropic", {"mu": 0.0, "sigma": 1.0}), ("diagonal", {})]
    for preset in params["architectures"]:
        config = _config(preset, params, overrides)
        result = _model(config, out, params, specs=specs)
        rows.append(pipeline.headline(result))
        sections += pipeline.model_sections(result, ks=params["ks"])
    _write_table(rows, os.path.join(out, "summary_counts.csv"))
    return [("Component number distributions: summary", [report.table(rows)])] + sections


def filaments(params: dict, out: str, overrides: list[str]):
    """Study 3: radius histograms, t-SNE of raw and PCA-reduced z at several point counts, PCA zooms."""
    config = _config(params["ae"], params, overrides)
    pipeline.ensure_trained(config)
    z = pipeline.ensure_encoded(config)
    # The analysis the other studies share (same size) is reused; other t-SNE point counts get their own.
    shared = os.path.join(os.path.dirname(out), "analysis", config.name)
    shared_size = dataclasses.replace(params["size"], tsne_points=min(params["size"].tsne_points, len(z)))
    parts = []
    for n in sorted({min(n, len(z)) for n in params["tsne_points"]}):
        size = dataclasses.replace(params["size"], tsne=True, tsne_points=n, tsne_pca=params["tsne_pca"])
        folder = shared if size == shared_size else os.path.join(out, f"analysis_tsne{n}")
        summary = pipeline.ensure_analyzed(config, encode.z_path(config.run_dir), folder, size)
        figures = [f for f in summary["figures"] if f.startswith(("tsne", "pca_1_2_zoom", "radius", "original_axes"))]
        parts += [report.paragraph(f"t-SNE on {n} points; radius peak {summary['radius']['peak']:.3f}")]
        parts += [report.figure(os.path.join(folder, f), f"{f} ({n} points)") for f in figures]
    return [("Filaments and voids", parts), _dimension_section(_dimension_rows(z, config.seed), None, out)]


def _dimension_rows(z, seed: int, min_points: int = 32) -> dict[str, list[dict]]:
    """TwoNN dimension vs scale of the z-points and of as many points of a Gaussian with their fitted full
    covariance: the null, a space-filling cloud of the same spread; filaments show as a lower dimension."""
    null = samplers.FullGaussianSampler.fit(z).sample(make_key(seed), len(z))
    return {
        "z-points": intrinsic.dimension_vs_scale(z, min_points=min_points),
        "fitted full Gaussian": intrinsic.dimension_vs_scale(np.asarray(null), min_points=min_points),
    }


def _dimension_section(rows: dict[str, list[dict]], n_factors: int | None, out: str) -> tuple[str, list[str]]:
    """intrinsic_dimension.csv and .png in out, and the report section showing them."""
    png = intrinsic_dimension_figure(rows, n_factors, os.path.join(out, "intrinsic_dimension.png"))
    table = [dict(set=k, **r) for k, rs in rows.items() for r in rs]
    _write_table(table, os.path.join(out, "intrinsic_dimension.csv"))
    return ("Intrinsic dimension vs scale", [report.table(table), report.figure(png)])


def ae_vs_vae(params: dict, out: str, overrides: list[str]):
    """Study 4: AE and tiny-KL VAE on the same data and architecture, every figure and table side by side."""
    results = []
    judge_dir = None
    if params.get("judge", True):
        judge_config = _config(params["ae"], params, overrides)
        judge_dir = pipeline.ensure_judge(judge_config, os.path.join(out, "judge"), params["size"].judge_epochs)
    for preset in (params["ae"], params["vae"]):
        config = _config(preset, params, overrides)
        results.append(_model(config, out, params, judge_dir=judge_dir))
    side = [pipeline.headline(r) for r in results]
    sweep = sum((pipeline.sweep_rows(r, k) for r in results for k in params["ks"]), [])
    _write_table(side, os.path.join(out, "ae_vs_vae.csv"))
    _write_table(sweep, os.path.join(out, "ae_vs_vae_generators.csv"))
    return [("AE vs tiny-KL VAE", [report.table(side), report.table(sweep)])] + [
        s for r in results for s in pipeline.model_sections(r, ks=params["ks"])
    ]


def ablations(params: dict, out: str, overrides: list[str]):
    """Study 5: one table per scripted sweep (z_dim, KL weight, epochs, architecture, task)."""
    sections = []
    for axis, values in params["sweeps"].items():
        rows = []
        for value in values:
            extra = dict(value) if isinstance(value, dict) else {axis: value}
            preset = extra.pop("preset", params["ae"])
            name = f"ablation_{axis.replace('.', '_')}_{'_'.join(str(v) for v in extra.values()) or preset}"
            config = _config(preset, params, overrides, name=name, **extra)
            metrics = pipeline.ensure_trained(config)
            z = pipeline.ensure_encoded(config)
            summary = stats.component_summary(z)
            mu, half_width = summary["mean"], summary["half_width"]
            counts = stats.summary_counts(mu, half_width, z)
            uniform = pipeline_uniform_hits(z, mu, half_width, params["ablation_bound"], config.seed)
            rows.append(
                {
                    axis: value if not isinstance(value, dict) else json.dumps(value),
                    "preset": preset,
                    "held-out mse": metrics["eval_mse"],
                    "psnr dB": metrics["eval_psnr"],
                    "kl_share": metrics["kl_share"],
                    "dominant": len(stats.dominant_components(mu, half_width)),
                    "radius peak": stats.radius_stats(stats.radii(z))["peak"],
                    **{k: v for k, v in counts.items() if isinstance(v, (int, float))},
                    **uniform,
                }
            )
        _write_table(rows, os.path.join(out, f"ablation_{axis.replace('.', '_')}.csv"))
        sections.append((f"Ablation over {axis}", [report.table(rows)]))
    return sections


def pipeline_uniform_hits(z, mu, half_width, bound: float, seed: int, ks=(2.0, 3.0)) -> dict:
    """MC hit fractions of a uniform box generator at the given bound (the ablation tables' column)."""
    sampler = samplers.UniformBoxSampler(bound=bound, z_dim=int(z.shape[1]))
    rows = hits.hit_table([sampler], mu, half_width, ks, make_key(seed), num_samples=20_000)
    return {f"uniform b={bound:g} hits k={r['k']:g}": r["mc_fraction"] for r in rows}


def intrinsic_dimension(params: dict, out: str, overrides: list[str]):
    """Study 6: TwoNN dimension vs scale of the z-points, checked on the faces' known factors first."""
    config = _config(params["ae"], params, overrides)
    pipeline.ensure_trained(config)
    rows = _dimension_rows(pipeline.ensure_encoded(config), config.seed)
    faces = config.data.name == "faces"
    if faces:
        labels = data.load_split(config.data, "train", config.seed).labels
        rows["true factors"] = intrinsic.dimension_vs_scale(labels, min_points=32)
    return [_dimension_section(rows, len(FACE_FACTORS) if faces else None, out)]


# ---------------------------------------------------------------------------------------------

_SMOKE = dict(
    ae="faces", vae="faces_vae_tiny_kl", overrides=SMOKE_DATA + ["train.epochs=1"], size=SMOKE_SIZE, ks=(2.0, 3.0)
)
_FULL_CELEBA = dict(
    ae="case1", vae="case1_vae_tiny_kl", overrides=["train.epochs=10"], size=FULL_SIZE, ks=(2.0, 3.0, 12.0)
)

STUDIES = {
    s.name: s
    for s in [
        Study(
            "random_points",
            random_points.__doc__,
            random_points,
            smoke=dict(_SMOKE, bounds=(1, 20)),
            full=dict(_FULL_CELEBA, bounds=(1, 2, 3, 5, 10, 20)),
        ),
        Study(
            "component_distributions",
            component_distributions.__doc__,
            component_distributions,
            smoke=dict(_SMOKE, architectures=("faces",), bounds=(1, 3)),
            full=dict(_FULL_CELEBA, architectures=("case1", "case2"), bounds=(1, 1.5, 2, 3, 5, 10, 12)),
        ),
        Study(
            "filaments",
            filaments.__doc__,
            filaments,
            smoke=dict(_SMOKE, tsne_points=(128,), tsne_pca=(None, 2)),
            full=dict(_FULL_CELEBA, tsne_points=(20_000, 80_000, 10**9), tsne_pca=(None, 2, 4, 10)),
        ),
        Study("ae_vs_vae", ae_vs_vae.__doc__, ae_vs_vae, smoke=dict(_SMOKE, judge=False), full=dict(_FULL_CELEBA)),
        Study(
            "ablations",
            ablations.__doc__,
            ablations,
            smoke=dict(_SMOKE, ablation_bound=1.5, sweeps={"model.z_dim": (4, 8)}),
            full=dict(
                _FULL_CELEBA,
                ablation_bound=1.5,
                sweeps={
                    "model.z_dim": (16, 64, 256, 512),
                    "model.kl_weight": tuple(
                        {"model.variational": "true", "model.kl_weight": w} for w in (0, 1e-6, 1e-4, 1e-2, 1)
                    ),
                    "train.epochs": (1, 3, 10),
                    "architecture": ({"preset": "case1"}, {"preset": "case2"}),
                    "data.task": ("reconstruct", {"data.task": "denoise", "data.drop_rate": 0.1}, "recolor"),
                },
            ),
        ),
        Study(
            "intrinsic_dimension",
            intrinsic_dimension.__doc__,
            intrinsic_dimension,
            smoke=dict(_SMOKE),
            full=dict(_SMOKE, overrides=["data.num_images=20000", "train.epochs=15"]),
        ),
    ]
}


def run_study(name: str, full: bool, out_dir: str, overrides: list[str] = ()) -> str:
    """Run one study into out_dir/<name>/ (results.json, CSV tables, figures, report.html); returns the page."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; studies: {', '.join(STUDIES)}")
    study = STUDIES[name]
    params = study.full if full else study.smoke
    out = os.path.join(out_dir, name)
    overrides = [f"workdir={os.path.join(out_dir, 'runs')}"] + list(overrides)
    sections = study.run(params, out, overrides)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(
            {
                "study": name,
                "size": "full" if full else "smoke",
                "overrides": overrides,
                "params": {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k, v in params.items()},
            },
            f,
            indent=2,
            default=str,
        )
    return report.write_page(
        os.path.join(out, "report.html"),
        f"ae_jax study: {name}",
        [("Study", [report.paragraph(" ".join(study.description.split()))])] + sections,
    )
