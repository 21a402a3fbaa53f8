"""The generators evaluator: generated z-points under a `GeneratorsConfig`, where they land against the encoded
data, their radii against theory, and decoded image grids.

A generator is a GeneratorSpec of the config, e.g. the one written "uniform bound=1.5" or "mixture n_components=10";
generator i draws with fold_in(key(seed), i), once per evaluation (`draws`): the generators and judge
evaluators read the same points.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.config import GeneratorsConfig, GeneratorSpec
from ae_jax.data import datasets
from ae_jax.evaluators import distribution, encode, generators_plots, registry
from ae_jax.numerics import hits, stats
from ae_jax.numerics.samplers import Sampler, make_sampler
from ae_jax.report import plots
from ae_jax.report.pages import Share
from ae_jax.runtime import make_key

logger = logging.getLogger(__name__)

BOX = "each component within mu +- k FWHM (the mean and full width at half maximum of the data's histogram)"

Decode = Callable[[np.ndarray], np.ndarray]  # z-points (n, D) -> images (n, H, W, C) in [0, 1]


def generate(
    z: jax.Array, spec_index: int, spec: GeneratorSpec, n: int, seed: int
) -> tuple[Sampler, np.ndarray, jax.Array]:
    """Generator `spec_index` fitted to z (where it is fitted) and its n points; also the key for its tables."""
    fit_key, sample_key, table_key = jax.random.split(jax.random.fold_in(make_key(seed), spec_index), 3)
    sampler = make_sampler(spec.sampler, z=z, key=fit_key, **dict(spec.params))
    return sampler, np.asarray(sampler.sample(sample_key, n)), table_key


def check_region(comp: dict) -> None:
    """Refuse data with constant components: their box has zero FWHM and fitted Gaussians degenerate."""
    constant = np.flatnonzero(np.asarray(comp["std"]) == 0)
    if constant.size:
        raise ValueError(
            f"{constant.size} components have zero variance (first: {constant[:5].tolist()}): the data "
            "box has zero FWHM along them and fitted Gaussians are degenerate"
        )


def _measure(sampler: Sampler, points: np.ndarray, table_key, region, support, cfg: GeneratorsConfig) -> dict:
    """Everything measured about one generator's points."""
    mu, fwhm = region
    hit_rows = hits.hit_table([sampler], mu, fwhm, cfg.ks, table_key, num_samples=cfg.n)
    radius_row = hits.radius_table([sampler], table_key, num_samples=cfg.n)[0]
    precision = hits.manifold_precision(*support, jnp.asarray(points[: len(support[0])]))
    return {
        "sampler": sampler.name,
        "label": sampler.label,
        "params": sampler.params(),  # the mixture's: its fit (iterations, convergence, each restart's log-likelihood)
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


def draw(z, cfg: GeneratorsConfig, seed: int) -> list[tuple[Sampler, np.ndarray, jax.Array]]:
    """Every generator of cfg.specs fitted to z (where it is fitted) with its cfg.n points and table key."""
    z = stats.as_points(z, "z-points", min_points=2)
    return [generate(z, i, s, cfg.n, seed) for i, s in enumerate(cfg.specs)]


def sweep(
    z,
    comp: dict,
    cfg: GeneratorsConfig,
    out_dir: str,
    draws: Sequence[tuple[Sampler, np.ndarray, jax.Array]],
    decode: Decode | None = None,
    real_images: np.ndarray | None = None,
    reconstruct: Decode | None = None,
) -> dict:
    """Every generator's `draws` (from `draw`) against z-points z (with `comp`, their analyze.components): box
    hits, radii, k-NN precision; decoded grids when `decode` is given. Writes sweep.csv and figures to out_dir."""
    z = stats.as_points(z, "z-points", min_points=2)
    check_region(comp)
    os.makedirs(out_dir, exist_ok=True)
    region = (comp["mean"], comp["fwhm"])
    support = z[: cfg.precision_points]
    support = (support, stats.knn_distances(support, cfg.precision_k))
    real_radii = np.asarray(stats.radii(z))
    results, radii_by_label, image_rows = [], {}, []
    for sampler, points, table_key in draws:
        result = _measure(sampler, points, table_key, region, support, cfg)
        radii_by_label[result["label"]] = np.linalg.norm(points, axis=1)
        if decode is not None:
            image_rows.append((result["label"], decode(points[: cfg.grid_images])))
        results.append(result)
        logger.info(
            f"{result['label']}: share inside the data box (mu +- k FWHM): "
            + ", ".join(f"k={h['k']:g}: {h['mc_fraction']:.3g}" for h in result["hits"])
            + f"; radius {result['radius']['mean']:.2f} (analytic {result['radius']['analytic_mean']:.2f})"
        )
    figures = _sweep_figures(results, real_radii, radii_by_label, image_rows, cfg, out_dir, real_images, reconstruct)
    write_sweep_csv(results, os.path.join(out_dir, "sweep.csv"), cfg.precision_k)
    return {
        "n_data_points": int(z.shape[0]),
        "z_dim": int(z.shape[1]),
        "ks": list(cfg.ks),
        "region": BOX,
        "data_radius": {"mean": float(np.mean(real_radii)), "std": float(np.std(real_radii))},
        "results": results,
        "figures": figures,
    }


def _sweep_figures(results, real_radii, radii_by_label, image_rows, cfg, out_dir, real_images, reconstruct) -> dict:
    """The radius figure, the decoded grid (when decoded) and the hit fraction against the uniform bound."""
    figures = {
        "radius": generators_plots.radius_plot(
            real_radii,
            radii_by_label,
            os.path.join(out_dir, "radius_vs_data.png"),
            analytic={r["label"]: (r["radius"]["analytic_mean"], r["radius"]["analytic_std"]) for r in results},
        )
    }
    if image_rows:
        real = real_images[: cfg.grid_images]
        rows = image_rows + [("held-out originals", datasets.to_unit(real)), ("reconstructions", reconstruct(real))]
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
    return figures


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


# ---------------------------------------------------------------------------------------------
# The generators evaluator.


def draws(ctx: registry.RunContext) -> list[tuple[Sampler, np.ndarray, jax.Array]]:
    """Every generator fitted and drawn once per context (`draw`), for the generators and judge evaluators."""
    return ctx.memo("draws", lambda: draw(encode.points(ctx), ctx.config.generators, ctx.config.seed))


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """Generated z-points against the data's box and k-NN manifold, their radii, decoded grids."""
    comp = distribution.components_of(ctx)
    check_region(comp)
    decoding = (
        dict(decode=ctx.decode, real_images=ctx.real_images(), reconstruct=ctx.reconstruct) if ctx.run_dir else {}
    )
    cfg = ctx.config
    numbers = sweep(encode.points(ctx), comp, cfg.generators, folder, draws(ctx), **decoding)
    return numbers, numbers.pop("figures")


def short_label(row: dict) -> str:
    """A generator's label, or for fitted ones (whose labels list fitted values) its sampler's name."""
    return row["label"] if row["sampler"] in ("grid", "uniform", "isotropic") else f"fitted {row['sampler']}"


def inside(row: dict, k: float) -> Share:
    """The share of a generator's Monte Carlo points inside the data box at k (BOX)."""
    hit = next(h for h in row["hits"] if h["k"] == k)
    return Share(hit["mc_hits"], hit["mc_samples"])


def _row(r: dict, k: float) -> dict:
    hit = next(h for h in r["hits"] if h["k"] == k)
    precision = next(v for key, v in r.items() if key.startswith("manifold_precision"))
    return {
        "generator": r["label"],
        "k": k,
        "inside the data box": inside(r, k),
        "log10 P analytic": "n/a" if hit["log10_analytic"] is None else hit["log10_analytic"],
        "radius mean": r["radius"]["mean"],
        "radius analytic": r["radius"]["analytic_mean"],
        "k-NN precision": precision,
    }


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Per generator and report k: the share inside the data box, radii, k-NN precision; the decoded grid."""
    rows = result.numbers["results"]
    k = ks[0]
    shares = {short_label(r): inside(r, k) for r in rows}
    best = max(shares, key=shares.get)
    outside = [name for name, share in shares.items() if share.count == 0]
    box = f"at k={k:g}: {BOX.replace('k FWHM', f'{k:g} FWHM')}"
    finding = (
        f"{label}: {sum(s >= 0.5 for s in shares.values())} of {len(shares)} generators put at least half their "
        f"points inside the data box {box}; the most {best}, "
        f"{shares[best].text()}" + (f"; none at all for {', '.join(outside)}." if outside else ".")
    )
    each = f"{label}: inside the data box at k={k:g}: " + "; ".join(f"{g} {s.text()}" for g, s in shares.items())
    return registry.View(
        headline={f"most inside at k={k:g}": best, "its share": shares[best]},
        rows=[_row(r, k) for k in ks for r in rows],
        figures=result.figures,
        findings=[finding, each + "."],
        finding_figures=[result.figures["decoded_grid"]] if "decoded_grid" in result.figures else [],
    )


registry.register(
    registry.Evaluator(
        "generators",
        measure,
        view,
        lambda c: {
            "z": encode.points_digest(c),
            "params": c.params_digest(),
            "histogram": {"bin_width": c.config.distribution.bin_width, "hist_range": c.config.distribution.hist_range},
            "seed": c.config.seed,
            "data": registry.data_inputs(c) if c.run_dir else None,
        },
        sections=("generators",),
        format=2,  # 2: the mixture is the best of restarts run to a tolerance, its fit recorded in params
    )
)
