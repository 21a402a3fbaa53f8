"""Write docs/results.md from the studies' output files: every number is read from a results file, and
each verdict (reproduced / refuted / not yet measured) follows from a rule stated next to it.

    python -m ae_jax.studies.results_md --results results --out docs/results.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
from collections.abc import Callable

import numpy as np

from ae_jax.evaluators import judge as judge_evaluator
from ae_jax.evaluators import registry
from ae_jax.numerics import stats
from ae_jax.report.pages import cell_text, percent
from ae_jax.studies import framework, views


def _load(path: str):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _hits(sweep: dict, label_prefix: str, k: float) -> list[tuple[str, float, int]]:
    out = []
    for r in sweep["results"]:
        if r["label"].startswith(label_prefix):
            h = next(h for h in r["hits"] if h["k"] == k)
            out.append((r["label"], h["mc_fraction"], h["mc_samples"], h["log10_analytic"], h["mc_hits"]))
    return out


def _models(root: str, study: str) -> list[dict]:
    """The models a finished study used, as its results.json records them (none if it has not run)."""
    done = _done(root, study)
    return done["models"] if done else []


def _done(root: str, study: str) -> dict | None:
    """A study's results.json: of its full size, else of its smoke size (none if it has not run)."""
    for full in (True, False):
        done = _load(os.path.join(framework.study_folder(root, study, full), "results.json"))
        if done:
            return done
    return None


def _numbers(model: dict, evaluator: str) -> dict | None:
    """An evaluator's numbers with its figures (name -> path) under "figures"."""
    result = model["evaluators"].get(evaluator)
    return None if result is None else {**result["numbers"], "figures": result["figures"]}


def _sweep(model: dict) -> dict | None:
    """The generators' numbers of a model, each generator with its judge scores when a judge ran."""
    sweep = _numbers(model, "generators")
    judge = _numbers(model, "judge")
    if sweep and judge:
        scores = {r["label"]: r for r in judge["rows"]}
        sweep["results"] = [{**r, **scores.get(r["label"], {})} for r in sweep["results"]]
        sweep["judge_reference"] = {k: scores[k] for k in ("reconstructions", "real vs real") if k in scores}
    return sweep


def _verdict(measured: bool, holds: bool) -> str:
    return "not yet measured" if not measured else ("**reproduced**" if holds else "**refuted**")


def component_claim(summary: dict, name: str) -> tuple[str, list[str], list[str]]:
    """Gaussian-like components (FWHM close to 2.3548 sigma) with a few dominant ones (<= 10% of z_dim)."""
    std, hw = np.asarray(summary["std"]), np.asarray(summary["fwhm"])
    ratio = hw / (stats.GAUSSIAN_FWHM_PER_STD * np.maximum(std, 1e-12))
    gaussian_like = int(np.sum((ratio > 0.8) & (ratio < 1.25)))
    n_dom, d = len(summary["dominant_components"]), summary["z_dim"]
    share = gaussian_like / d
    holds = share >= 0.75 and 0 < n_dom <= 0.1 * d
    mu = np.abs(np.asarray(summary["mu"]))
    outliers = int(np.sum((mu > 3 * np.median(mu)) | (hw > 3 * np.median(hw))))
    lines = [
        f"- {name}: {d} components; FWHM/(2.3548 sigma) median {np.median(ratio):.3f}, "
        f"{percent(gaussian_like, d)} of components within [0.8, 1.25] (Gaussian-like); {n_dom} dominant "
        f"components (|mu| >= 0.25 or FWHM >= 1.5); components past each threshold: {_counts(summary)}; "
        f"scale-free count: {outliers} components have |mu| or FWHM above 3x its median over components."
    ]
    return _verdict(True, holds), lines, _analysis_figures(summary, "components_all.png", "components_dominant.png")


def _counts(summary: dict) -> str:
    """'mu_abs_ge_1: 3 of 64, ...': how many components pass each of the summary's count thresholds."""
    d = summary["z_dim"]
    return ", ".join(f"{k}: {v} of {d}" for k, v in summary["counts"].items() if isinstance(v, int))


def _analysis_figures(summary: dict, *names: str) -> list[str]:
    return [summary["figures"][n] for n in names if n in summary["figures"]]


def _sweep_figures(sweep: dict, *keys: str) -> list[str]:
    return [sweep["figures"][k] for k in keys if k in sweep["figures"]]


def radius_claim(summary: dict, name: str) -> tuple[str, list[str], list[str]]:
    """The radius distribution sits where independent components put it: mean |z| within 5% of
    sqrt(sum(mu^2 + sigma^2)) (the peak of the skewed |z| distribution lies below both and is reported)."""
    mu, std = np.asarray(summary["mu"]), np.asarray(summary["std"])
    predicted = float(np.sqrt(np.sum(mu**2 + std**2)))
    peak = summary["radius"]["peak"]
    dominant = np.asarray(summary["dominant_components"], int)
    share = float(np.sum(mu[dominant] ** 2 + std[dominant] ** 2) / np.sum(mu**2 + std**2)) if len(dominant) else 0
    holds = abs(summary["radius"]["mean"] - predicted) / predicted < 0.05
    return (
        _verdict(True, holds),
        [
            f"- {name}: radius peak {peak:.3f} (0.05 bins), mean {summary['radius']['mean']:.3f}, std "
            f"{summary['radius']['std']:.3f}; sqrt(sum(mu^2 + sigma^2)) = {predicted:.3f}; the dominant components "
            f"carry {share:.0%} of E|z|^2."
        ],
        _analysis_figures(summary, "radius_hist_0.5.png", "radius_hist_0.05.png"),
    )


def uniform_hits_claim(sweep: dict, name: str) -> tuple[str, list[str], list[str]]:
    """Zero MC hits for uniform b >= 3 at k = 3, and a measurable share (> 1e-3) for b in [1, 1.5] at k = 2."""
    far = [h for h in _hits(sweep, "uniform", 3.0) if float(h[0].split("=")[1].rstrip(")")) >= 3]
    near = [h for h in _hits(sweep, "uniform", 2.0) if float(h[0].split("=")[1].rstrip(")")) <= 1.5]
    only_uniform = all(r["sampler"] == "uniform" for r in sweep["results"])  # study 1: its grid shows the bounds
    holds = all(f == 0 for _, f, *_ in far) and all(f > 1e-3 for _, f, *_ in near) and far and near

    def analytic(a):
        return f", analytic 10^{a:.1f}" if a is not None and math.isfinite(a) else ""

    shares = [(row, 3) for row in far] + [(row, 2) for row in near]
    return (
        _verdict(bool(far and near), bool(holds)),
        [f"- {name}:"]
        + [f"  - {label}, k={k}: {percent(hits, n)} inside{analytic(a)}" for (label, _, n, a, hits), k in shares],
        _sweep_figures(sweep, "hits_vs_bound", *["decoded_grid"] * only_uniform),
    )


def radius_law_claim(sweep: dict, name: str) -> tuple[str, list[str], list[str]]:
    """Uniform generators' |z| follows the analytic law: MC mean within 2% of the analytic mean."""
    rows = [r for r in sweep["results"] if r["sampler"] == "uniform"]
    errs = [abs(r["radius"]["mean"] - r["radius"]["analytic_mean"]) / r["radius"]["analytic_mean"] for r in rows]
    lines = [f"- {name}: data radius mean {sweep['data_radius']['mean']:.2f}" + ("" if rows else "; no uniform rows.")]
    lines += [
        f"  - {r['label']}: MC {r['radius']['mean']:.2f} +- {r['radius']['std']:.2f}, analytic "
        f"{r['radius']['analytic_mean']:.2f} +- {r['radius']['analytic_std']:.2f}"
        for r in rows
    ]
    return _verdict(bool(rows), bool(rows) and max(errs) < 0.02), lines, _sweep_figures(sweep, "radius")


def fitted_gaussian_claim(sweep: dict, name: str) -> tuple[str, list[str], list[str]]:
    """Fitted Gaussians decode closer to faces than uniform boxes: judge Frechet distance of the diagonal and
    full-covariance fits below every uniform generator's."""
    judged = {r["label"]: r for r in sweep["results"] if "judge_frechet" in r}
    fitted = [r for r in judged.values() if r["sampler"] in ("diagonal", "full", "mixture")]
    uniform = [r for r in judged.values() if r["sampler"] == "uniform"]
    if not fitted or not uniform:
        return _verdict(False, False), [f"- {name}: no judge scores in this sweep."], []
    holds = max(r["judge_frechet"] for r in fitted if r["sampler"] != "mixture") < min(
        r["judge_frechet"] for r in uniform
    )
    references = sweep.get("judge_reference", {})
    best = min(fitted, key=lambda r: r["judge_frechet"])
    against = (
        [
            f"  Against the references: the closest fit ({best['sampler']}, FD {best['judge_frechet']:.3g}) is "
            + ", ".join(f"{best['judge_frechet'] / r['judge_frechet']:.3g}x {label}" for label, r in references.items())
            + f"; the closest uniform box is {min(r['judge_frechet'] for r in uniform) / best['judge_frechet']:.3g}x "
            "the closest fit."
        ]
        if references
        else []
    )
    scored = [(r["label"], r) for r in fitted + uniform] + list(references.items())
    return (
        _verdict(True, holds),
        [f"- {name}: judge Frechet distance (FD) and precision per generator and reference below."]
        + against
        + [f"  - {label}: FD {r['judge_frechet']:.3g}, precision " + _judge_precision(r) for label, r in scored],
        _sweep_figures(sweep, "decoded_grid"),
    )


def _judge_precision(row: dict) -> str:
    """A judge precision as a percentage of the judged images (a bare fraction where their count is unknown)."""
    n = row.get("judge_images")
    return percent(round(row["judge_precision"] * n), n) if n else f"{row['judge_precision']:.2f}"


def filament_claim(filaments: dict, name: str) -> tuple[str, list[str], list[str]]:
    """Filaments: at the smallest scale (all points) the z-points' TwoNN intrinsic dimension is below half that
    of as many points drawn from a Gaussian with their fitted full covariance (a space-filling cloud)."""
    by_set = {}
    for r in filaments["rows"]:
        by_set.setdefault(r["set"], []).append(r)
    z_rows, null_rows = by_set.get("z-points", []), by_set.get("fitted full Gaussian", [])
    if not z_rows or not null_rows:
        return _verdict(False, False), [f"- {name}: no intrinsic-dimension table."], []

    holds = float(z_rows[0]["dimension"]) < 0.5 * float(null_rows[0]["dimension"])
    table = [
        {
            "set": r["set"],
            "points": int(r["n_points"]),
            "scale r2": float(r["scale_r2"]),
            "TwoNN": float(r["dimension"]),
        }
        for r in (*z_rows, *null_rows)
    ]
    return (
        _verdict(True, holds),
        [f"- {name}: TwoNN dimension of the z-points and of the fitted full Gaussian, by scale:", ""]
        + _markdown_table(table),
        filaments["figures"],
    )


ABLATION_COLUMNS = ("held-out mse", "radius peak", "median FWHM", "fwhm_ge_3", "dominant components")


def _markdown_table(rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        return cell_text(v).replace("|", "\\|")

    return [
        "| " + " | ".join(map(cell, columns)) + " |",
        "|" + "---|" * len(columns),
        *["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows],
    ]


def _shares(row: dict) -> dict:
    """An ablation row with its uniform-box hit fractions as percentages of its "uniform points"."""
    n = row.get("uniform points")
    return {k: percent(round(v * n), n) if n and k.startswith("uniform b=") else v for k, v in row.items()}


def ablation_sections(done: dict | None) -> list[str]:
    """One table per ablation axis (study 5), its arms named by the setting that differs, and how its headline
    numbers move from the first arm to the last."""
    if not done:
        return ["", "## Ablations: not yet measured"]
    lines = ["", "## Ablations (study 5)", "", f"Setting: `{' '.join(done['overrides'])}` ({done['size']} size)."]
    for rows in done["tables"].values():
        rows = [_shares(r) for r in rows]
        axis = next(iter(rows[0]))
        hits = [c for c in rows[0] if c.startswith("uniform b=")]
        moves = [
            f"- {c}: {cell_text(rows[0][c])} ({rows[0][axis]}) to {cell_text(rows[-1][c])} ({rows[-1][axis]})"
            for c in (*ABLATION_COLUMNS, *hits)
            if c in rows[0]
        ]
        lines += ["", f"### {axis}", "", "From the first arm to the last:", "", *moves, ""] + _markdown_table(rows)
    return lines


def measured_sections(root: str) -> list[str]:
    """Per study that ran, whatever evaluators ran: the models' headline numbers side by side, then per evaluator
    what it found and its table (each evaluator's view, ae_jax.studies.views)."""
    lines = []
    for folder in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        done = _load(os.path.join(root, folder, "results.json"))
        if not done or not done.get("models"):
            continue
        study = done.get("study", folder)
        models = [(views.recorded_label(m), views.recorded_views(m)) for m in done["models"]]
        side = [views.headline_row(name, vs) for name, vs in models]
        lines += ["", f"## Measured in {study} ({done['size']} size)", ""]
        lines += [f"**{done['banner']}**", ""] if done.get("banner") else []
        lines += _markdown_table(side)
        for evaluator in dict.fromkeys(e for _, vs in models for e in vs):
            shown = [(name, vs[evaluator]) for name, vs in models if evaluator in vs]
            rows = [{"model": name, **row} for name, view in shown for row in view.rows]
            lines += ["", f"### {study}: {registry.title(evaluator)}", ""]
            lines += [f"- **{warning}**" for _, view in shown for warning in view.warnings]
            lines += [f"- {sentence}" for _, view in shown for sentence in view.findings]
            lines += [""] + _markdown_table(rows) if rows else []
    return lines


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")


def judge_lines(root: str) -> list[str]:
    """The judges whose scores the studies report (their judge.json digests in the judge evaluators' records):
    held-out quality beside the trivial baseline, read from judge.json."""
    from ae_jax.stages import file_digest

    lines = []
    for study in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        folder = os.path.join(root, study)
        used = set()
        for model in (_load(os.path.join(folder, "results.json")) or {}).get("models", []):
            judge = model["evaluators"].get("judge")
            record = _load(os.path.join(judge["folder"], "result.json")) if judge else None
            if record:
                used.add(record["inputs"]["judge"])
        for name in sorted(n for n in os.listdir(folder) if n.startswith("judge-")) if used else []:
            path = os.path.join(folder, name, "judge.json")
            if not os.path.isfile(path) or file_digest(path) not in used:
                continue
            info = _load(path)
            q = judge_evaluator.quality(info)
            net = info["net"]
            lines.append(
                f"- {study}/{name}: {info['dataset']}; {info['epochs']} epochs, filters {net['filters']}, "
                f"{net['convs_per_stage']} conv(s) per stage, {net['pool']} maps, "
                f"augment {info.get('augment', 'none')}; held-out {q['metric']} {q['held_out']:.3f} "
                f"against the trivial baseline's {q['baseline']:.3f}."
            )
    return ["", "## The judge", "", *lines] if lines else []


FILAMENT_FIGURES = (
    "pca_1_2_zoom_1.png",
    "pca_1_2_zoom_0.1.png",
    "original_axes_dominant.png",
    "tsne_raw.png",
    "tsne_pca10.png",
)  # the distribution figures shown beside the filament claim
CLAIM_STUDIES = ((1, "random_points"), (2, "component_distributions"), (3, "filaments"), (4, "ae_vs_vae"))


def _arguments(argv) -> argparse.Namespace:
    """The command line: where the results are, where the page goes, its title and setting line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--title", default="Results on the CelebA subset")
    parser.add_argument("--setting", default="", help="one line saying how the studies were run")
    return parser.parse_args(argv)


def _fresh_figures_dir(out: str) -> str:
    """The empty figures folder beside the page: the page's own copies, none may outlive the results they showed."""
    figures_dir = os.path.join(os.path.dirname(os.path.abspath(out)), "figures")
    shutil.rmtree(figures_dir, ignore_errors=True)
    os.makedirs(figures_dir)
    return figures_dir


def _claim_data(root: str) -> tuple[dict, dict, dict]:
    """From the claim studies' models: distribution summaries and training records by model name, and the
    generator sweeps by 'study N (name)'."""
    analyses, sweeps, training = {}, {}, {}
    for number, study in CLAIM_STUDIES:
        for model in _models(root, study):
            name = views.recorded_label(model)
            if "distribution" in model["evaluators"]:
                analyses.setdefault(name, _numbers(model, "distribution"))
            if "generators" in model["evaluators"]:
                sweeps[f"study {number} ({name})"] = _sweep(model)
            training.setdefault(name, model["train"])
    return analyses, sweeps, training


def _filaments(root: str) -> tuple[str, dict] | None:
    """(name, intrinsic-dimension rows and figures) of the filaments study's main model (its first: all
    points), or None where it has not run."""
    models = _models(root, "filaments")
    if not models:
        return None
    model, dimension = models[0], _numbers(models[0], "intrinsic_dimension")
    return (
        f"study 3 ({views.recorded_label(model)})",
        {
            "rows": [dict(set=k, **r) for k, rs in dimension["rows"].items() for r in rs],
            "figures": list(dimension["figures"].values())
            + _analysis_figures(_numbers(model, "distribution"), *FILAMENT_FIGURES),
        },
    )


def _header(title: str, setting: str) -> list[str]:
    """The page's title, how it was generated, and the line saying how the studies were run."""
    return [
        f"# {title}",
        "",
        "Generated by `python -m ae_jax.studies.results_md` from the files the studies wrote; every number below "
        "is read from those files, and each verdict follows from the rule in its heading.",
        "",
        setting,
    ]


def _training_lines(training: dict) -> list[str]:
    """Epochs and last-epoch throughput of each model."""
    lines = ["", "## Training", ""]
    return lines + [
        f"- {name}: {m['epoch']} epochs, {m['images_per_s']:,.0f} images/s in the last one."
        for name, m in training.items()
    ]


def _claims(analyses: dict, sweeps: dict, filaments: tuple[str, dict] | None) -> list[tuple[str, Callable, list]]:
    """(section title, claim function, its (name, data) items) for each claim, in the page's order."""
    analysed = [(n, a) for n, a in analyses.items() if a]
    swept = [(n, s) for n, s in sweeps.items() if s]
    return [
        ("Components are Gaussian-like, with a few dominant ones", component_claim, analysed),
        ("The radius distribution peaks where the components put it", radius_claim, analysed),
        (
            "Uniform generators: zero hits for b >= 3 at 3 FWHM, many for b ~ 1-1.5 at 2 FWHM",
            uniform_hits_claim,
            swept,
        ),
        ("The radius law of uniform generators", radius_law_claim, swept),
        ("Fitted Gaussians decode to faces (in the judge's eyes)", fitted_gaussian_claim, swept),
        ("Filaments and voids", filament_claim, [filaments] if filaments else []),
    ]


def _overall(verdicts: list[str]) -> str:
    """One verdict for a claim from its arms' verdicts: theirs where they agree, else 'mixed: ...', noting arms
    not yet measured."""
    measured = [v for v in verdicts if v != "not yet measured"]
    overall = (
        "not yet measured"
        if not measured
        else measured[0]
        if len(set(measured)) == 1
        else "mixed: " + ", ".join(measured)
    )
    if measured and len(measured) < len(verdicts):
        overall += f" ({len(verdicts) - len(measured)} of {len(verdicts)} arms not yet measured)"
    return overall


def _figure_links(name: str, paths: list[str], figures_dir: str) -> list[str]:
    """Copy the existing figures of an item into figures_dir (prefixed by its name) and link them."""
    links = []
    for path in (p for p in paths if os.path.isfile(p)):
        copy = shutil.copyfile(path, os.path.join(figures_dir, f"{_slug(name)}_{os.path.basename(path)}"))
        links.append(f"![{name}: {os.path.basename(path)}](figures/{os.path.basename(copy)})")
    return links


def claim_section(title: str, fn: Callable, items: list, figures_dir: str) -> tuple[list[str], int]:
    """A claim's section: its overall verdict, rule (fn's docstring), each item's lines and its figures (copied
    into figures_dir); and how many figures it shows."""
    verdicts, body, figures = [], [], []
    for name, data in items:
        v, ls, paths = fn(data, name)
        verdicts.append(v)
        body += [f"{line} ({v})" for line in ls[:1]] + ls[1:]
        figures += _figure_links(name, paths, figures_dir)
    lines = ["", f"## {title}: {_overall(verdicts)}", "", f"Rule: {' '.join(fn.__doc__.split())}", ""] + body
    return lines + ([""] + figures if figures else []), len(figures)


def main(argv=None) -> int:
    """Write the page (and its figure copies) from the results folder: header, training, claims, judge, ablations,
    measured sections."""
    args = _arguments(argv)
    root, figures_dir = args.results, _fresh_figures_dir(args.out)
    analyses, sweeps, training = _claim_data(root)
    lines = _header(args.title, args.setting) + _training_lines(training)
    copied = 0
    for title, fn, items in _claims(analyses, sweeps, _filaments(root)):
        section, shown = claim_section(title, fn, items, figures_dir)
        lines += section
        copied += shown
    lines += judge_lines(root)
    lines += ablation_sections(_done(root, "ablations"))
    lines += measured_sections(root)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out} with {copied} figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
