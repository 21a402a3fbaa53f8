"""`ae-jax sample`: draw z-points from generators, measure where they land against the encoded data,
compare their radii with theory, decode them into image grids and score the images with the judge.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import hits, plots, sample_plots, stats
from ae_jax.runtime import make_key
from ae_jax.samplers import make_sampler

KS = (1.0, 2.0, 3.0, 12.0)
SWEEP_BOUNDS = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 12.0)
MIXTURE_COMPONENTS = 10
PRECISION_REAL_POINTS = 10_000  # encoded points used as the k-NN manifold (precision/recall is quadratic)


def parse_params(items: Sequence[str]) -> dict:
    """['bound=1.5', 'n_components=10', 'covariance=diag'] -> typed dict."""
    params = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param {item!r} must look like key=value (e.g. bound=1.5)")
        key, value = item.split("=", 1)
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        params[key.strip()] = value
    return params


def sweep_specs() -> list[tuple[str, dict]]:
    """The study's table: uniform boxes of growing bound, isotropic and fitted Gaussians, a mixture."""
    return [("uniform", {"bound": b}) for b in SWEEP_BOUNDS] + [
        ("isotropic", {"mu": 0.0, "sigma": 1.0}),
        ("diagonal", {}),
        ("full", {}),
        ("mixture", {"n_components": MIXTURE_COMPONENTS}),
    ]


def _decoder(run_dir: str):
    """(decode z -> images in [0, 1], held-out uint8 images, reconstruct images -> images) of a run."""
    from ae_jax import data
    from ae_jax.train import load_run

    config, model, params = load_run(run_dir)
    decode = jax.jit(lambda p, z: model.apply({"params": p}, z, method=lambda m, z: m.decode(z)))
    reconstruct = jax.jit(
        lambda p, x: model.apply(
            {"params": p}, x.astype(jnp.float32) / 255.0, method=lambda m, x: m.decode(m.encode(x))
        )
    )

    def decode_all(z: np.ndarray, batch: int = 256) -> np.ndarray:
        return np.concatenate(
            [np.asarray(decode(params, jnp.asarray(z[i : i + batch]))) for i in range(0, len(z), batch)]
        )

    valid = data.load_split(config.data, "valid", config.seed).images
    return decode_all, np.asarray(valid), lambda x: np.asarray(reconstruct(params, jnp.asarray(x)))


def _judge_scores(features: Callable, generated_images: np.ndarray, real_images: np.ndarray) -> dict:
    """Frechet distance and k-NN precision/recall of generated vs real images in the judge's feature space."""
    from ae_jax.judge import frechet_distance

    n = min(len(generated_images), len(real_images))
    f_gen, f_real = features(generated_images[:n]), features(real_images[:n])
    return {
        "judge_frechet": float(frechet_distance(f_real, f_gen)),
        "judge_precision": float(hits.manifold_precision(f_real, hits.knn_radii(f_real, 3), f_gen)),
        "judge_recall": float(hits.manifold_recall(f_gen, hits.knn_radii(f_gen, 3), f_real)),
        "judge_images": n,
    }


def evaluate_sampler(
    name: str,
    params: dict,
    z,
    mu,
    half_width,
    real_radii,
    real_support,
    real_support_radii,
    key: jax.Array,
    n: int,
    ks: Sequence[float],
) -> tuple[dict, np.ndarray]:
    """Everything measured about one generator, and its n points."""
    fit_key, sample_key, table_key = jax.random.split(key, 3)
    sampler = make_sampler(name, z=z, key=fit_key, **params)
    points = np.asarray(sampler.sample(sample_key, n))
    hit_rows = hits.hit_table([sampler], mu, half_width, ks, table_key, num_samples=n)
    radius_row = hits.radius_table([sampler], table_key, num_samples=n)[0]
    precision = hits.manifold_precision(real_support, real_support_radii, jnp.asarray(points[: len(real_support)]))
    result = {
        "sampler": name,
        "label": sampler.label,
        "params": {k: v for k, v in sampler.params().items() if isinstance(v, (int, float, str))},
        "n": n,
        "hits": [
            {
                "k": r["k"],
                "mc_fraction": r["mc_fraction"],
                "mc_hits": r["mc_hits"],
                "mc_samples": r["mc_samples"],
                "log10_analytic": r["log10_analytic"],
            }
            for r in hit_rows
        ],
        "radius": {
            "mean": radius_row["mc_mean"],
            "std": radius_row["mc_std"],
            "analytic_mean": radius_row["mean"],
            "analytic_std": radius_row["std"],
            "analytic_method": radius_row["method"],
        },
        "manifold_precision_k3": float(precision),
        "data_radius": {"mean": float(np.mean(real_radii)), "std": float(np.std(real_radii))},
    }
    return result, points


def run_sampling(
    z,
    out_dir: str,
    sampler: str = "uniform",
    params: Sequence[str] | dict = (),
    n: int = 10_000,
    seed: int = 0,
    run_dir: str | None = None,
    sweep: bool = False,
    ks: Sequence[float] = KS,
    judge_dir: str | None = None,
    grid_images: int = 16,
    specs: Sequence[tuple[str, dict]] | None = None,
    log=print,
) -> dict:
    """Write hits.json (one generator) or sweep.csv (a table over `specs`, default the study's) plus figures."""
    stats.check_finite(z)
    os.makedirs(out_dir, exist_ok=True)
    z = jnp.asarray(z)
    summary = stats.component_summary(z)
    mu, half_width = summary["mean"], summary["half_width"]
    constant = np.flatnonzero(np.asarray(summary["std"]) == 0)
    if constant.size:
        raise ValueError(
            f"{constant.size} components have zero variance (first: {constant[:5].tolist()}): the data "
            "box has zero half-width along them and fitted Gaussians are degenerate"
        )
    real_radii = np.asarray(stats.radii(z))
    support = z[:PRECISION_REAL_POINTS]
    support_radii = hits.knn_radii(support, 3)
    decode = judge = None
    if run_dir:
        decode, real_images, reconstruct = _decoder(run_dir)
    if judge_dir:
        from ae_jax.judge import load_judge

        judge = load_judge(judge_dir)
    specs = (
        (specs or sweep_specs())
        if sweep
        else [(sampler, parse_params(params) if not isinstance(params, dict) else params)]
    )
    key = make_key(seed)
    results, radii_by_label, image_rows = [], {}, []
    for i, (name, p) in enumerate(specs):
        result, points = evaluate_sampler(
            name, dict(p), z, mu, half_width, real_radii, support, support_radii, jax.random.fold_in(key, i), n, ks
        )
        radii_by_label[result["label"]] = np.linalg.norm(points, axis=1)
        if decode is not None:
            images = decode(points[: max(grid_images, 256 if judge else 0)])
            image_rows.append((result["label"], images[:grid_images]))
            if judge is not None:
                result.update(_judge_scores(judge, images, real_images))
        results.append(result)
        log(
            f"{result['label']}: "
            + ", ".join(f"k={h['k']:g}: {h['mc_fraction']:.3g}" for h in result["hits"])
            + f"; radius {result['radius']['mean']:.2f} (analytic {result['radius']['analytic_mean']:.2f})"
        )
    figures = {
        "radius": sample_plots.radius_plot(
            real_radii,
            radii_by_label,
            os.path.join(out_dir, "radius_vs_data.png"),
            analytic={r["label"]: (r["radius"]["analytic_mean"], r["radius"]["analytic_std"]) for r in results},
        )
    }
    if decode is not None:
        real = real_images[:grid_images]
        rows = image_rows + [("held-out originals", real / 255.0), ("reconstructions", reconstruct(real))]
        figures["decoded_grid"] = plots.image_rows_png(
            rows, os.path.join(out_dir, "decoded_grid.png"), "decoded z-points per generator"
        )
    if sweep:
        uniform_rows = [
            dict(h, bound=r["params"]["bound"]) for r in results if r["sampler"] == "uniform" for h in r["hits"]
        ]
        if uniform_rows:
            figures["hits_vs_bound"] = sample_plots.hit_fraction_plot(
                uniform_rows, os.path.join(out_dir, "hits_vs_bound.png")
            )
        write_sweep_csv(results, os.path.join(out_dir, "sweep.csv"))
    report = {
        "n_data_points": int(z.shape[0]),
        "z_dim": int(z.shape[1]),
        "ks": list(ks),
        "region": "each component within mean +- k * half_width (FWHM/2 of its histogram)",
        "results": results,
        "figures": figures,
    }
    with open(os.path.join(out_dir, "sweep.json" if sweep else "hits.json"), "w") as f:
        json.dump(report if sweep else {**report, **results[0]}, f, indent=2)
    return report


def write_sweep_csv(results: list[dict], path: str) -> None:
    """One row per (generator, k) with the hit fractions, radii and judge scores."""
    columns = [
        "label",
        "k",
        "mc_fraction",
        "mc_hits",
        "mc_samples",
        "log10_analytic",
        "radius_mean",
        "radius_std",
        "radius_analytic_mean",
        "radius_analytic_std",
        "manifold_precision_k3",
        "judge_frechet",
        "judge_precision",
        "judge_recall",
    ]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in results:
            for h in r["hits"]:
                writer.writerow(
                    {
                        "label": r["label"],
                        **{c: h[c] for c in ("k", "mc_fraction", "mc_hits", "mc_samples", "log10_analytic")},
                        "radius_mean": r["radius"]["mean"],
                        "radius_std": r["radius"]["std"],
                        "radius_analytic_mean": r["radius"]["analytic_mean"],
                        "radius_analytic_std": r["radius"]["analytic_std"],
                        "manifold_precision_k3": r["manifold_precision_k3"],
                        **{c: r.get(c, "") for c in ("judge_frechet", "judge_precision", "judge_recall")},
                    }
                )
