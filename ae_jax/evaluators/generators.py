"""The generators evaluator: generated z-points under a `GeneratorsConfig`, where they land against the encoded
data, their radii against theory, and decoded image grids.

A generator is a GeneratorSpec of the config, e.g. the one written "uniform bound=1.5" or "mixture n_components=10";
generator i draws with fold_in(key(seed), i), once per evaluation (`draws`): the generators and judge
evaluators read the same points. Post II's uniform grid (`author_grid`) draws next, as generator len(specs), and
records the evidence of the uniform claims (ae_jax.studies.claims).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.config import GeneratorsConfig, GeneratorSpec
from ae_jax.data import datasets
from ae_jax.evaluators import distribution, encode, generators_plots, registry
from ae_jax.evaluators.evidence import (
    AUTHOR_RADIUS_PEAK,
    AUTHOR_Z_DIM,
    UNIFORM_SETTINGS,
    Evidence,
    author_scale,
    uniform_claim_id,
)
from ae_jax.numerics import hits, stats
from ae_jax.numerics.samplers import Sampler, UniformBoxSampler, make_sampler
from ae_jax.report import pages, plots
from ae_jax.report.pages import Share
from ae_jax.runtime import make_key

logger = logging.getLogger(__name__)

BOX = "each component within mu +- k FWHM (the mean and full width at half maximum of the data's histogram)"

Decode = Callable[[np.ndarray], np.ndarray]  # z-points (n, D) -> images (n, H, W, C) in [0, 1]

# Post II's uniform generators as written: z uniform in [-b, b]^D, hits inside mu +- k half-widths (FWHM).
AUTHOR_BOUNDS = (1.0, 1.5, 2.0, 3.0, 12.0)
AUTHOR_KS = (1.5, 2.0, 3.0, 12.0)
HIT_COLUMNS = ("k", "mc_fraction", "mc_hits", "mc_samples", "mc_low", "mc_high", "log10_analytic")  # per k
Z_95 = statistics.NormalDist().inv_cdf(0.975)


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
        "hits": [{k: r[k] for k in HIT_COLUMNS} for r in hit_rows],
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
    radius_columns = ["mean", "std", "analytic_mean", "analytic_std"]
    columns = ["label", *HIT_COLUMNS, *[f"radius_{c}" for c in radius_columns], precision]
    rows = [
        {
            "label": r["label"],
            **{c: h[c] for c in HIT_COLUMNS},
            **{f"radius_{c}": r["radius"][c] for c in radius_columns},
            precision: r[precision],
        }
        for r in results
        for h in r["hits"]
    ]
    pages.write_csv(rows, path, columns)


# ---------------------------------------------------------------------------------------------
# Post II's uniform grid and the uniform claims' evidence.


def radius_peak(z, bin_width: float) -> float:
    """The radius peak as the distribution evaluator measures it: the centre of the fullest bin of width
    `bin_width` (distribution.radius_peak_bin_width) of the radii's histogram."""
    r = stats.radii(z)
    return float(stats.radius_stats(r, stats.radius_histogram(r, bin_width))["peak"])


def radius_law(b: float, z_dim: int) -> float:
    """Post II's mean radius of z uniform in [-b, b]^N: b sqrt(N / 3) sqrt(1 / (1 + 1 / (4 N)))."""
    return b * math.sqrt(z_dim / 3) * math.sqrt(1 / (1 + 1 / (4 * z_dim)))


def author_grid(mu, fwhm, scale: float, n: int, key: jax.Array) -> dict:
    """Post II's grid: n z-points uniform in [-b, b]^D for each b of AUTHOR_BOUNDS, in absolute units and times
    `scale` (`author_scale`), their shares inside mu +- k FWHM for each k of AUTHOR_KS with 95% Wilson intervals
    (one stream of draws scaled to every b, hits.uniform_hit_table); and the mean radius of the absolute b = 1
    points against `radius_law`, with its normal interval. Drawn in blocks: memory does not grow with n."""
    settings = [(units, factor, b) for units, factor in (("absolute", 1.0), ("scaled", scale)) for b in AUTHOR_BOUNDS]
    table = hits.uniform_hit_table([b * factor for _, factor, b in settings], mu, fwhm, AUTHOR_KS, key, n)
    rows = [
        {
            "b": b,
            "k": h["k"],
            "units": units,
            "bound": h["bound"],
            "hits": h["mc_hits"],
            "n": h["mc_samples"],
            "share": h["mc_fraction"],
            "low": h["mc_low"],
            "high": h["mc_high"],
            "log10_analytic": h["log10_analytic"],
        }
        for (units, _, b), h in zip([s for s in settings for _ in AUTHOR_KS], table)
    ]
    z_dim = len(mu)
    radius = hits.radius_table([UniformBoxSampler(bound=1.0, z_dim=z_dim)], key, num_samples=n)[0]  # the same points
    half = Z_95 * radius["mc_std"] / math.sqrt(n)
    law = radius_law(1.0, z_dim)
    return {
        "n": n,
        "scale": scale,
        "rows": rows,
        "radius_law": {
            "b": 1.0,
            "mean": radius["mc_mean"],
            "std": radius["mc_std"],
            "formula": law,
            "ratio": radius["mc_mean"] / law,
            "ratio_low": (radius["mc_mean"] - half) / law,
            "ratio_high": (radius["mc_mean"] + half) / law,
        },
    }


def grid_row(grid: dict, b: float, k: float, units: str) -> dict:
    """The row of `author_grid` at (b, k) in `units` (absolute or scaled)."""
    return next(r for r in grid["rows"] if (r["b"], r["k"], r["units"]) == (b, k, units))


def grid_evidence(grid: dict) -> dict:
    """Evidence of every uniform claim (UNIFORM_SETTINGS, absolute and scaled) and of the radius law, by claim id."""
    method = "Wilson score interval of the share of hits, 95%, in the data box as measured"
    evidence = {}
    for b, k in UNIFORM_SETTINGS:
        for scaled in (False, True):
            r = grid_row(grid, b, k, "scaled" if scaled else "absolute")
            evidence[uniform_claim_id(b, k, scaled)] = Evidence(r["share"], (r["low"], r["high"]), r["n"], method)
    law = grid["radius_law"]
    evidence["uniform_radius_law"] = Evidence(
        law["ratio"],
        (law["ratio_low"], law["ratio_high"]),
        grid["n"],
        "normal interval of the mean radius, 95%",
        null=1.0,
        null_name=f"post II's formula ({law['formula']:.4g} at b = {law['b']:g})",
    )
    return {claim_id: e.to_json() for claim_id, e in evidence.items()}


def measure_grid(z, comp: dict, cfg, folder: str) -> tuple[dict, dict]:
    """`author_grid` in the data box of `comp`, scaled by the radius peak of z-points z, with its evidence, CSV
    (author_grid.csv) and figure; nothing when cfg.generators.author_grid_n is 0."""
    g = cfg.generators
    if not g.author_grid_n:
        return {}, {}
    peak = radius_peak(z, cfg.distribution.radius_peak_bin_width)
    key = jax.random.fold_in(make_key(cfg.seed), len(g.specs))  # the next generator's stream
    grid = author_grid(comp["mean"], comp["fwhm"], author_scale(peak, z.shape[1]), g.author_grid_n, key)
    grid["radius_peak"] = peak
    pages.write_csv(grid["rows"], os.path.join(folder, "author_grid.csv"))
    figure = generators_plots.author_grid_plot(grid["rows"], grid["scale"], os.path.join(folder, "author_grid.png"))
    return {"author_grid": grid, "evidence": grid_evidence(grid)}, {"author_grid": figure}


# ---------------------------------------------------------------------------------------------
# The generators evaluator.


def draws(ctx: registry.RunContext) -> list[tuple[Sampler, np.ndarray, jax.Array]]:
    """Every generator fitted and drawn once per context (`draw`), for the generators and judge evaluators."""
    return ctx.memo("draws", lambda: draw(encode.points(ctx), ctx.config.generators, ctx.config.seed))


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """Generated z-points against the data's box and k-NN manifold, their radii, decoded grids; post II's uniform
    grid and the uniform claims' evidence."""
    comp = distribution.components_of(ctx)
    check_region(comp)
    decoding = (
        dict(decode=ctx.decode, real_images=ctx.real_images(), reconstruct=ctx.reconstruct) if ctx.run_dir else {}
    )
    cfg = ctx.config
    numbers = sweep(encode.points(ctx), comp, cfg.generators, folder, draws(ctx), **decoding)
    figures = numbers.pop("figures")
    grid, grid_figures = measure_grid(encode.points(ctx), comp, cfg, folder)
    return {**numbers, **grid}, {**figures, **grid_figures}


def short_label(row: dict) -> str:
    """A generator's label, or for fitted ones (whose labels list fitted values) its sampler's name."""
    return row["label"] if row["sampler"] in ("grid", "uniform", "isotropic") else f"fitted {row['sampler']}"


def inside(row: dict, k: float) -> Share:
    """The share of a generator's Monte Carlo points inside the data box at k (BOX)."""
    hit = next(h for h in row["hits"] if h["k"] == k)
    return Share(hit["mc_hits"], hit["mc_samples"])


def interval_text(low: float, high: float) -> str:
    """A share's 95% interval as percentages, '0% to 0.0023%'."""
    return f"{100 * low:.3g}% to {100 * high:.3g}%"


def _row(r: dict, k: float) -> dict:
    hit = next(h for h in r["hits"] if h["k"] == k)
    precision = next(v for key, v in r.items() if key.startswith("manifold_precision"))
    return {
        "generator": r["label"],
        "units": "absolute",
        "k": k,
        "inside the data box": inside(r, k),
        "95% interval": interval_text(hit["mc_low"], hit["mc_high"]) if "mc_low" in hit else "",
        "log10 P analytic": "n/a" if hit["log10_analytic"] is None else hit["log10_analytic"],
        "radius mean": r["radius"]["mean"],
        "radius analytic": r["radius"]["analytic_mean"],
        "k-NN precision": precision,
    }


def _grid_rows(grid: dict) -> list[dict]:
    """The rows of post II's grid for the generators table: b, units, k, hits and share, interval."""
    return [
        {
            "generator": f"post II's grid: uniform b={r['b']:g}" + f" x {grid['scale']:.3g}" * (r["units"] == "scaled"),
            "units": r["units"],
            "k": r["k"],
            "inside the data box": Share(r["hits"], r["n"]),
            "95% interval": interval_text(r["low"], r["high"]),
            "log10 P analytic": r["log10_analytic"],
        }
        for r in grid["rows"]
    ]


def _grid_finding(label: str, grid: dict) -> str:
    """Where post II's grid puts every point inside the box, and where none, in each of its units."""
    parts = []
    for units in ("absolute", "scaled"):
        rows = [r for r in grid["rows"] if r["units"] == units]
        all_in = [f"({r['b']:g}, {r['k']:g})" for r in rows if r["hits"] == r["n"]]
        none = [f"({r['b']:g}, {r['k']:g})" for r in rows if r["hits"] == 0]
        parts.append(
            f"{units} b: every point inside at (b, k) = {', '.join(all_in) or 'none'}; no point inside at "
            f"{', '.join(none) or 'none'}"
        )
    law = grid["radius_law"]
    scale = (
        f"scaled by {grid['scale']:.3g} (radius peak {grid['radius_peak']:.3g} against post III's "
        f"{AUTHOR_RADIUS_PEAK:g}, per sqrt(z_dim / {AUTHOR_Z_DIM}))"
    )
    return (
        f"{label}: post II's uniform grid, {grid['n']:,} z-points per b, box mu +- k FWHM, b in absolute units and "
        f"{scale}: " + "; ".join(parts) + f". Mean radius at b = {law['b']:g} over post II's formula: "
        f"{law['ratio']:.5f} [{law['ratio_low']:.5f}, {law['ratio_high']:.5f}]."
    )


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Per generator and report k: the share inside the data box with its interval, radii, k-NN precision; post
    II's grid; the decoded grid."""
    rows = result.numbers["results"]
    grid = result.numbers.get("author_grid")
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
        rows=[_row(r, k) for k in ks for r in rows] + (_grid_rows(grid) if grid else []),
        figures=result.figures,
        findings=[finding, each + "."] + ([_grid_finding(label, grid)] if grid else []),
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
            "histogram": {
                "bin_width": c.config.distribution.bin_width,
                "hist_range": c.config.distribution.hist_range,
                "radius_peak_bin_width": c.config.distribution.radius_peak_bin_width,
            },
            "seed": c.config.seed,
            "data": registry.data_inputs(c) if c.run_dir else None,
        },
        sections=("generators",),
        # 2: the mixture is the best of restarts run to a tolerance, its fit recorded in params; 3: post II's grid,
        # the uniform claims' evidence, Wilson intervals of the shares of hits
        format=3,
    )
)
