"""Generated z-points under a `GeneratorsConfig`: where they land against the encoded data, their radii
against theory, decoded image grids, and their judge scores.

A generator is a GeneratorSpec of the config, e.g. the one written "uniform bound=1.5" or "mixture n_components=10";
generator i draws with fold_in(key(seed), i), so the generators and judge evaluators see the same points.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.config import GeneratorsConfig, GeneratorSpec
from ae_jax.evaluators import generators_plots
from ae_jax.numerics import hits, stats
from ae_jax.numerics.samplers import Sampler, make_sampler
from ae_jax.report import plots
from ae_jax.runtime import make_key

Decode = Callable[[np.ndarray], np.ndarray]  # z-points (n, D) -> images (n, H, W, C) in [0, 1]


def generate(
    z: jax.Array, spec_index: int, spec: GeneratorSpec, n: int, seed: int
) -> tuple[Sampler, np.ndarray, jax.Array]:
    """Generator `spec_index` fitted to z (where it is fitted) and its n points; also the key for its tables."""
    fit_key, sample_key, table_key = jax.random.split(jax.random.fold_in(make_key(seed), spec_index), 3)
    sampler = make_sampler(spec.sampler, z=z, key=fit_key, **dict(spec.params))
    return sampler, np.asarray(sampler.sample(sample_key, n)), table_key


def check_region(comp: dict) -> None:
    """Refuse data with constant components: their box has zero half-width and fitted Gaussians degenerate."""
    constant = np.flatnonzero(np.asarray(comp["std"]) == 0)
    if constant.size:
        raise ValueError(
            f"{constant.size} components have zero variance (first: {constant[:5].tolist()}): the data "
            "box has zero half-width along them and fitted Gaussians are degenerate"
        )


def _measure(sampler: Sampler, points: np.ndarray, table_key, region, support, cfg: GeneratorsConfig) -> dict:
    """Everything measured about one generator's points."""
    mu, half_width = region
    hit_rows = hits.hit_table([sampler], mu, half_width, cfg.ks, table_key, num_samples=cfg.n)
    radius_row = hits.radius_table([sampler], table_key, num_samples=cfg.n)[0]
    precision = hits.manifold_precision(*support, jnp.asarray(points[: len(support[0])]))
    return {
        "sampler": sampler.name,
        "label": sampler.label,
        "params": {k: v for k, v in sampler.params().items() if isinstance(v, (int, float, str))},
        "n": cfg.n,
        "hits": [{k: r[k] for k in ("k", "mc_fraction", "mc_hits", "mc_samples", "log10_analytic")} for r in hit_rows],
        "radius": {
            "mean": radius_row["mc_mean"],
            "std": radius_row["mc_std"],
            "analytic_mean": radius_row["mean"],
            "analytic_std": radius_row["std"],
            "analytic_method": radius_row["method"],
        },
        f"manifold_precision_k{cfg.precision_k}": float(precision),
    }


def sweep(
    z,
    comp: dict,
    cfg: GeneratorsConfig,
    out_dir: str,
    seed: int,
    decode: Decode | None = None,
    real_images: np.ndarray | None = None,
    reconstruct: Decode | None = None,
    log=print,
) -> dict:
    """Every generator of cfg.specs against z-points z (with `comp`, their analyze.components): box hits,
    radii, k-NN precision; decoded grids when `decode` is given. Writes sweep.csv and figures to out_dir."""
    z = stats.as_points(z, "z-points", min_points=2)
    check_region(comp)
    os.makedirs(out_dir, exist_ok=True)
    region = (comp["mean"], comp["half_width"])
    support = z[: cfg.precision_points]
    support = (support, stats.knn_distances(support, cfg.precision_k))
    real_radii = np.asarray(stats.radii(z))
    results, radii_by_label, image_rows = [], {}, []
    for i, s in enumerate(cfg.specs):
        sampler, points, table_key = generate(z, i, s, cfg.n, seed)
        result = _measure(sampler, points, table_key, region, support, cfg)
        radii_by_label[result["label"]] = np.linalg.norm(points, axis=1)
        if decode is not None:
            image_rows.append((result["label"], decode(points[: cfg.grid_images])))
        results.append(result)
        log(
            f"{result['label']}: "
            + ", ".join(f"k={h['k']:g}: {h['mc_fraction']:.3g}" for h in result["hits"])
            + f"; radius {result['radius']['mean']:.2f} (analytic {result['radius']['analytic_mean']:.2f})"
        )
    figures = {
        "radius": generators_plots.radius_plot(
            real_radii,
            radii_by_label,
            os.path.join(out_dir, "radius_vs_data.png"),
            analytic={r["label"]: (r["radius"]["analytic_mean"], r["radius"]["analytic_std"]) for r in results},
        )
    }
    if decode is not None:
        real = real_images[: cfg.grid_images]
        rows = image_rows + [("held-out originals", real / 255.0), ("reconstructions", reconstruct(real))]
        figures["decoded_grid"] = plots.image_rows_png(
            rows, os.path.join(out_dir, "decoded_grid.png"), "decoded z-points per generator"
        )
    uniform_rows = [
        dict(h, bound=r["params"]["bound"]) for r in results if r["sampler"] == "uniform" for h in r["hits"]
    ]
    if len({r["bound"] for r in uniform_rows}) > 1:
        figures["hits_vs_bound"] = generators_plots.hit_fraction_plot(
            uniform_rows, os.path.join(out_dir, "hits_vs_bound.png")
        )
    write_sweep_csv(results, os.path.join(out_dir, "sweep.csv"), cfg.precision_k)
    return {
        "n_data_points": int(z.shape[0]),
        "z_dim": int(z.shape[1]),
        "ks": list(cfg.ks),
        "region": "each component within mean +- k * half_width (FWHM/2 of its histogram)",
        "data_radius": {"mean": float(np.mean(real_radii)), "std": float(np.std(real_radii))},
        "results": results,
        "figures": figures,
    }


def judge_scores(
    z,
    cfg: GeneratorsConfig,
    seed: int,
    decode: Decode,
    features: Callable,
    real_images: np.ndarray,
    reconstruct: Decode,
    k: int,
) -> list[dict]:
    """Frechet distance and k-NN precision/recall, in the judge's feature space, of cfg.judge_images decoded
    points of every generator (the same points `sweep` drew) against held-out images, with two reference rows:
    reconstructions (the decoder at its best) and the next held-out images (real vs real: the floor)."""
    from ae_jax.train.judge import frechet_distance

    z = stats.as_points(z, "z-points", min_points=2)
    n = min(cfg.judge_images, len(real_images) // 2)
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

    rows = []
    for i, s in enumerate(cfg.specs):
        sampler, points, _ = generate(z, i, s, cfg.n, seed)
        rows.append(scores(sampler.label, decode(points[:n])))
    rows.append(scores("reconstructions", reconstruct(real_images[:n])))
    rows.append(scores("real vs real", np.asarray(real_images[n : 2 * n])))
    return rows


def write_sweep_csv(results: list[dict], path: str, precision_k: int) -> None:
    """One row per (generator, k) with the hit fractions and radii."""
    precision = f"manifold_precision_k{precision_k}"
    hit_columns = ["k", "mc_fraction", "mc_hits", "mc_samples", "log10_analytic"]
    radius_columns = ["mean", "std", "analytic_mean", "analytic_std"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["label", *hit_columns, *[f"radius_{c}" for c in radius_columns], precision])
        writer.writeheader()
        for r in results:
            for h in r["hits"]:
                writer.writerow(
                    {
                        "label": r["label"],
                        **{c: h[c] for c in hit_columns},
                        **{f"radius_{c}": r["radius"][c] for c in radius_columns},
                        precision: r[precision],
                    }
                )
