"""Write docs/results.md from the studies' output files: every number is read from a results file, and
each claim's verdict (supported / refuted / inconclusive / not measured, ae_jax.studies.claims) follows from a rule
stated next to it.

    python -m ae_jax.studies.results_md --results results --out docs/results.md
    python -m ae_jax.studies.results_md --results other_results --section trend   # that section only
    python -m ae_jax.studies.results_md --results seeds_0_1 --results seed_2   # a study's seeds pooled
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil

from ae_jax import stages
from ae_jax.evaluators import judge as judge_evaluator
from ae_jax.evaluators import registry
from ae_jax.report.pages import cell_text, percent
from ae_jax.studies import catalogue, claims, framework, trend, views


def _load(path: str):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _found(roots: list[str], study: str) -> tuple[dict | None, str]:
    """(a study's results.json, the results folder holding it): of its full size in the first folder that has
    it, else of its smoke size; (None, "") if it has not run."""
    for full in (True, False):
        for root in roots:
            done = _load(os.path.join(framework.study_folder(root, study, full), "results.json"))
            if done:
                return done, root
    return None, ""


def _done(roots: list[str], study: str) -> dict | None:
    return _found(roots, study)[0]


def _located(path: str, root: str, done: dict) -> str:
    """A recorded file's path under root: as recorded if it is there, else at the same place relative to the
    folder the study wrote into (its workdir's parent), so a results folder copied elsewhere still shows."""
    if os.path.isfile(path):
        return path
    workdir = next((o.split("=", 1)[1] for o in done["overrides"] if o.startswith("workdir=")), "")
    return os.path.join(root, os.path.relpath(path, os.path.dirname(workdir))) if workdir else path


def _setting(done: dict) -> tuple:
    """What must agree for two results of one study to be pooled: size and every override but seed and workdir."""
    return done["size"], sorted(o for o in done["overrides"] if not o.startswith(("seed=", "workdir=")))


def pooled(roots: list[str], study: str) -> dict | None:
    """A study's results pooled over the results folders that hold it (its seeds run in several sessions or on
    several machines): every folder's models, their figure paths located under their folder; refused when the
    settings differ or one seed of a model appears twice (it would narrow the intervals across seeds)."""
    found = [(root, done) for root in roots if (done := _found([root], study)[0])]
    if not found:
        return None
    (first_root, first), models, seen = found[0], [], {}
    for root, done in found:
        if _setting(done) != _setting(first):
            raise SystemExit(
                f"{study} results under {first_root} and {root} were run with other settings "
                f"({_setting(first)} against {_setting(done)}): pool only one setting's seeds"
            )
        for m in done["models"]:
            where = seen.setdefault((m["label"], m["config"]["seed"]), root)
            if where != root:
                raise SystemExit(
                    f"{study}: seed {m['config']['seed']} of {m['label']} is under both {where} and {root}: give "
                    "each seed once (run the others with --set seed=S)"
                )
            evaluators = {
                name: {**r, "figures": {n: _located(f, root, done) for n, f in r["figures"].items()}}
                for name, r in m["evaluators"].items()
            }
            models.append({**m, "evaluators": evaluators})
    models.sort(key=lambda m: m["config"]["seed"])
    return {
        **first,
        "models": models,
        "seeds": len({m["config"]["seed"] for m in models}),
    }


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


MEASURED_HEADING = "## Measured in "


def measured_sections(roots: list[str]) -> list[str]:
    """Per study that ran, whatever evaluators ran, its seeds together over the results folders (those of one
    setting: _setting): the models' headline numbers side by side, then per evaluator what it found and its table
    (each evaluator's view, ae_jax.studies.views)."""
    found: dict[tuple, dict] = {}
    for root in roots:
        for folder in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            done = _load(os.path.join(root, folder, "results.json"))
            if done and done.get("models"):
                key = (done.get("study", folder), repr(_setting(done)))
                found.setdefault(key, {**done, "models": []})["models"] += done["models"]
    lines = []
    for (study, _), done in found.items():
        by_seed = sorted(done["models"], key=lambda m: m["config"]["seed"])
        models = [(views.recorded_label(m), views.recorded_views(m)) for m in by_seed]
        side = [views.headline_row(name, vs) for name, vs in models]
        lines += ["", f"{MEASURED_HEADING}{study} ({done['size']} size)", ""]
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


JUDGE_HEADING = "## The judge"
JUDGE_STUDIES = tuple(name for name, study in framework.STUDIES.items() if "judge" in study.evaluators)


def judge_lines(roots: list[str], figures_dir: str = "") -> list[str]:
    """The judges whose scores the studies report (their judge.json digests in the judge evaluators' records):
    held-out quality beside the trivial baseline, read from judge.json."""
    from ae_jax.stages import file_digest

    lines = []
    for root, study in ((r, s) for r in roots for s in (sorted(os.listdir(r)) if os.path.isdir(r) else [])):
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
    return ["", JUDGE_HEADING, "", *lines] if lines else []


def _arguments(argv) -> argparse.Namespace:
    """The command line: where the results are, where the page goes, its title and setting line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--results",
        action="append",
        help="a folder the studies wrote into (default: results); give several to pool a study's seeds run apart",
    )
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--title", default="Results on the CelebA subset")
    parser.add_argument("--setting", default="", help="one line saying how the studies were run")
    parser.add_argument(
        "--section",
        choices=sorted(SECTIONS),
        help="rewrite only this section of the existing page (and its figures), keeping the others",
    )
    return parser.parse_args(argv)


def _fresh_figures_dir(out: str, keep: tuple[str, ...] = ()) -> str:
    """The figures folder beside the page, emptied of all but the kept sections' figures (names starting with
    keep): the page's own copies, none may outlive the results they showed."""
    figures_dir = os.path.join(os.path.dirname(os.path.abspath(out)), "figures")
    os.makedirs(figures_dir, exist_ok=True)
    for name in os.listdir(figures_dir):
        if not (keep and name.startswith(keep)):
            os.remove(os.path.join(figures_dir, name))
    return figures_dir


def _header(title: str, setting: str) -> list[str]:
    """The page's title, how it was generated, and the line saying how the studies were run."""
    return [
        f"# {title}",
        "",
        "Generated by `python -m ae_jax.studies.results_md` from the files the studies wrote; every number below "
        "is read from those files, and each verdict follows from the rule stated with its claim.",
        "",
        setting,
    ]


def _figure_links(name: str, paths: list[str], figures_dir: str) -> list[str]:
    """Copy the existing figures of an item into figures_dir (prefixed by its name) and link them."""
    links = []
    for path in (p for p in paths if os.path.isfile(p)):
        copy = shutil.copyfile(path, os.path.join(figures_dir, f"{_slug(name)}_{os.path.basename(path)}"))
        links.append(f"![{name}: {os.path.basename(path)}](figures/{os.path.basename(copy)})")
    return links


CLAIMS_STUDY, CLAIMS_HEADING = "claims", "## Claims of the posts"
CLAIM_FIGURES = ("components_all.png", "radius_hist_0.05.png", "intrinsic_dimension", "author_grid")  # shown per model


def claims_lines(roots: list[str], figures_dir: str) -> list[str]:
    """The posts' claims decided on the claims study's models, their seeds together (ae_jax.studies.claims), pooled
    over the results folders: a summary table first, then per claim the post's words, the rule, ours with its
    interval, the null, the verdict; a few figures of each model's first seed whose files are here (copied into
    figures_dir); each model's training length and speed."""
    done = pooled(roots, CLAIMS_STUDY)
    if not done:
        return ["", f"{CLAIMS_HEADING}: not yet measured (`ae-jax study {CLAIMS_STUDY} --full --seeds 3`)"]
    groups: dict[str, list[dict]] = {}
    for m in done["models"]:
        groups.setdefault(m["label"], []).append(m)
    decided = {label: claims.verdicts(models) for label, models in groups.items()}
    summary = [
        {"claim": c.title, "post": c.post, **{label: vs[i].outcome for label, vs in decided.items()}}
        for i, c in enumerate(claims.CLAIMS)
    ]
    seeds = {label: sorted(m["config"]["seed"] for m in models) for label, models in groups.items()}
    lines = ["", CLAIMS_HEADING, "", f"Setting: `{' '.join(done['overrides'])}` ({done['size']} size); "]
    lines[-1] += "; ".join(f"{label}: seeds {', '.join(map(str, s))}" for label, s in seeds.items()) + "."
    if all(len(s) == 1 for s in seeds.values()):
        lines[-1] += " One seed per model: no interval across seeds; the intervals are over points only."
    lines += ["", *_markdown_table(summary)]
    for i, c in enumerate(claims.CLAIMS):
        lines += ["", f"### {c.title}", "", f'> "{c.quote}" ({c.post})', "", f"Rule: {c.rule_text()}.", ""]
        for label, vs in decided.items():
            row = claims.table_row(vs[i])
            lines.append(f"- {label}: ours {row['ours']}; null {row['null']}; **{row['verdict']}**")
    for label, models in groups.items():
        shown = [[figures(m)[n] for n in CLAIM_FIGURES if n in figures(m)] for m in models]
        first_here = next((s for s in shown if any(map(os.path.isfile, s))), [])
        lines += [""] + _figure_links(f"claims {label}", first_here, figures_dir)
    return lines + training_lines(done["models"], seeds=True)


def training_lines(models: list[dict], seeds: bool = False) -> list[str]:
    """Each recorded model's training length and its last epoch's speed (with its seed when seeds)."""

    def named(m: dict) -> str:
        return views.recorded_label(m) + (f" (seed {m['config']['seed']})" if seeds else "")

    return ["", "Training:", ""] + [
        f"- {named(m)}: {m['train']['epoch']} epochs, {m['train']['images_per_s']:,.0f} images/s in the last one."
        for m in models
    ]


def figures(model: dict) -> dict[str, str]:
    """A recorded model's figures by file name, over its evaluators."""
    return {n: p for r in model["evaluators"].values() for n, p in r["figures"].items()}


PRIOR_STUDY, PRIOR_HEADING = "vae_prior", "## VAEs help: the prior against the AE's fitted generators"


def prior_claim_lines(roots: list[str], figures_dir: str) -> list[str]:
    """The posts' "VAEs help" (claims.PRIOR_CLAIMS), decided across the vae_prior study's models: its own section,
    since the study trains its own models (a KL weight each) and may run apart from the claims study."""
    done = _done(roots, PRIOR_STUDY)
    if not done:
        return ["", f"{PRIOR_HEADING}: not yet measured (`ae-jax study {PRIOR_STUDY} --full`)"]
    lines = [
        "",
        PRIOR_HEADING,
        "",
        f"Setting: `{' '.join(done['overrides'])}` ({done['size']} size, study {PRIOR_STUDY}).",
    ]
    for v in claims.prior_verdicts(done["models"]):
        c, row = v.claim, claims.table_row(v)
        lines += ["", f"### {c.title}", "", f'> "{c.quote}" ({c.post})', "", f"Rule: {c.rule_text()}.", ""]
        lines.append(f"- ours {row['ours']}; null {row['null']}; **{row['verdict']}**")
    return lines


TREND_STUDY, TREND_HEADING = "training_trend", "## What changes with training"


def trend_lines(roots: list[str], figures_dir: str) -> list[str]:
    """The training-trend study (ae_jax.studies.trend): the verdict on the author's regime, the fits with their
    intervals, the rule, the figure (copied into figures_dir) and every grid point's row."""
    done, root = _found(roots, TREND_STUDY)
    if not done:
        return ["", f"{TREND_HEADING}: not yet measured (`ae-jax study {TREND_STUDY} --full`)"]
    fits, rows = done["tables"]["training_trend_fits"], done["tables"]["training_trend"]
    figure = os.path.join(framework.study_folder(root, TREND_STUDY, done["size"] == "full"), "training_trend.png")
    hidden = ("run", "images per epoch", "z_dim")
    return [
        "",
        TREND_HEADING,
        "",
        f"Setting: `{' '.join(done['overrides'])}` ({done['size']} size, study {TREND_STUDY}); "
        f"{len(rows)} grid points, one seed each.",
        "",
        f"**{trend.headline_text(fits[0])}**",
        "",
        *_markdown_table([{k: v for k, v in f.items() if k != "fitted"} for f in fits]),
        "",
        trend.rule_text(),
        "",
        *_figure_links("trend", [figure], figures_dir),
        "",
        *_markdown_table([{k: v for k, v in r.items() if k not in hidden} for r in rows]),
    ]


FIRST_POST_STUDIES, FIRST_POST_HEADING = ("first_post", "denoising"), "## Post I: z_dim, denoising and MNIST"
FIRST_POST_PARTS = (  # (study, table stem, the post's words, title); the z_dim parts carry an ordering verdict
    ("first_post", "first_post_z_dim", "z_dim", "z_dim 512 against 256"),
    ("denoising", "denoising", "denoise", "denoising almost totally obscured held-out images"),
    ("first_post", "first_post_mnist", "mnist", "MNIST at z_dim 2, 4 and 12"),
)


def first_post_lines(roots: list[str], figures_dir: str) -> list[str]:
    """Post I's remaining claims from the first_post and denoising studies (ae_jax.studies.catalogue): per part
    the post's words, the held-out MSE with its interval over images, for the z_dim parts the ordering rule and
    its verdict, and the part's figure (copied into figures_dir); per study its setting, wall time and each
    model's training length and speed."""
    found = {study: _found(roots, study) for study in FIRST_POST_STUDIES}
    if not any(done for done, _ in found.values()):
        runs = "; ".join(f"`ae-jax study {study} --full`" for study in FIRST_POST_STUDIES)
        return ["", f"{FIRST_POST_HEADING}: not yet measured ({runs})"]
    lines = ["", FIRST_POST_HEADING]
    for study, (done, _) in found.items():
        lines += ["", f"{study}: " + (f"`{' '.join(done['overrides'])}` ({done['size']} size); " if done else "")]
        took = f"its last run took {done['seconds'] / 3600:.2f} h, training what was not yet trained." if done else ""
        lines[-1] += took or "not yet measured."
    for study, stem, words, title in FIRST_POST_PARTS:
        done, root = found[study]
        lines += ["", f"### {title}", "", f'> "{catalogue.POST_I_WORDS[words]}" ({claims.POST_I})', ""]
        if not done:
            lines.append(f"Not yet measured: `ae-jax study {study} --full`.")
            continue
        order = done["tables"].get(f"{stem}_ordering")
        if order is not None:
            verdict = catalogue.ordering_verdict([(r["95% low"], r["95% high"]) for r in order])
            lines += [catalogue.ORDERING_RULE, "", f"**MSE falls as z_dim grows: {verdict}.**", ""]
            lines += _markdown_table(order) + [""]
        lines += _markdown_table(done["tables"][stem]) + [""]
        folder = framework.study_folder(root, study, done["size"] == "full")
        lines += _figure_links("first_post", [os.path.join(folder, f"{stem}.png")], figures_dir)
    return lines + training_lines([m for done, _ in found.values() if done for m in done["models"]])


SECTIONS = {  # the sections --section rewrites in place: heading, lines, the studies whose absence keeps them
    "claims": (CLAIMS_HEADING, claims_lines, (CLAIMS_STUDY,)),
    "prior": (PRIOR_HEADING, prior_claim_lines, (PRIOR_STUDY,)),
    "trend": (TREND_HEADING, trend_lines, (TREND_STUDY,)),
    "first_post": (FIRST_POST_HEADING, first_post_lines, FIRST_POST_STUDIES),
    "judge": (JUDGE_HEADING, judge_lines, JUDGE_STUDIES),
}


def _span(page: list[str], heading: str) -> tuple[int, int] | None:
    """[begin, end) of a section of the page: its blank line and heading up to the next "## " heading."""
    starts = [i for i, line in enumerate(page) if line.startswith(heading)]
    if not starts:
        return None
    end = next((i for i in range(starts[0] + 1, len(page)) if page[i].startswith("## ")), len(page))
    return starts[0] - (starts[0] > 0 and page[starts[0] - 1] == ""), end


def _read_page(out: str) -> list[str]:
    return open(out).read().split("\n") if os.path.isfile(out) else []


def update_section(out: str, name: str, roots: list[str]) -> None:
    """Rewrite one section of an existing page from the results folders, keeping every other section and its
    figures (a study run in another session or on another machine): its old lines and its old figure copies are
    replaced; a section the page lacks goes where a full rebuild puts it, before the next of SECTIONS on the page
    (else before the ablations and measured sections)."""
    heading, lines_of, _ = SECTIONS[name]
    figures_dir = os.path.join(os.path.dirname(os.path.abspath(out)), "figures")
    os.makedirs(figures_dir, exist_ok=True)
    for old in (f for f in os.listdir(figures_dir) if f.startswith(f"{name}_")):
        os.remove(os.path.join(figures_dir, old))
    page = _read_page(out)
    span = _span(page, heading)
    if span:
        begin, end = span
    else:
        after = [h for h, _, _ in list(SECTIONS.values())[list(SECTIONS).index(name) + 1 :]]
        before = (*after, "## Ablations", MEASURED_HEADING)
        begin = end = next((i - 1 for i, line in enumerate(page) if line.startswith(before)), len(page))
    page[begin:end] = lines_of(roots, figures_dir) + ([""] if span and end < len(page) else [])
    text = "\n".join(page).rstrip("\n") + "\n"
    stages.write_atomically(out, lambda f: f.write(text.encode()))


def _kept(page: list[str], heading: str, studies, roots: list[str]) -> list[str]:
    """The page's section under heading if none of its studies has results in the folders and it was measured."""
    span = _span(page, heading)
    section = page[span[0] : span[1]] if span else []
    while section and section[-1] == "":  # the blank line before the next heading is the next section's
        section.pop()
    absent = all(_done(roots, study) is None for study in studies)
    return section if section and absent and not any(": not yet measured" in line for line in section[:2]) else []


def kept_sections(out: str, roots: list[str]) -> dict[str, list[str]]:
    """The existing page's sections whose study is in none of the results folders (measured in an earlier session
    whose files are gone): kept as they are, with their figures, rather than replaced by "not yet measured"; the
    "Measured in" sections of such studies under their headings."""
    page, kept = _read_page(out), {}
    measured = [line for line in page if line.startswith(MEASURED_HEADING)]
    named = {name: (heading, studies) for name, (heading, _, studies) in SECTIONS.items()}
    named |= {line: (line, (line[len(MEASURED_HEADING) :].rsplit(" (", 1)[0],)) for line in measured}
    for name, (heading, studies) in named.items():
        if section := _kept(page, heading, studies, roots):
            kept[name] = section
            print(f"kept the {name} section of {out}: no {' or '.join(studies)} results under {', '.join(roots)}")
    return kept


def main(argv=None) -> int:
    """Write the page (and its figure copies) from the results folders: header, the posts' claims, the training
    "VAEs help", the training trend, post I's remaining claims, the judge, ablations, measured sections. With
    --section, only that one."""
    args = _arguments(argv)
    roots = args.results or ["results"]
    if args.section:
        update_section(args.out, args.section, roots)
        print(f"rewrote the {args.section} section of {args.out}")
        return 0
    kept = kept_sections(args.out, roots)
    figures_dir = _fresh_figures_dir(args.out, keep=tuple(f"{name}_" for name in kept if name in SECTIONS))
    lines = _header(args.title, args.setting)
    for name, (_, lines_of, _) in SECTIONS.items():
        lines += kept.get(name) or lines_of(roots, figures_dir)
    lines += ablation_sections(_done(roots, "ablations"))
    lines += measured_sections(roots)
    lines += [line for name, section in kept.items() if name.startswith(MEASURED_HEADING) for line in section]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out} with {len(os.listdir(figures_dir))} figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
