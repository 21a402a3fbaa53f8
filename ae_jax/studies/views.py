"""A study's models as a report shows them, whatever evaluators ran: each evaluator's own view
(ae_jax.evaluators.registry.view) gives headline numbers, table rows, figures and findings sentences; these
functions put them side by side, into page sections and into a findings paragraph."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from ae_jax.evaluators import registry
from ae_jax.report import pages
from ae_jax.studies import claims
from ae_jax.studies.pipeline import ModelResult


def model_views(label: str, ks: Sequence[float], results: Mapping[str, registry.Result]) -> dict[str, registry.View]:
    """Each evaluator's view of one model's results, in the order they ran."""
    return {name: registry.view(result, label, ks) for name, result in results.items()}


def views_of(m: ModelResult) -> dict[str, registry.View]:
    return model_views(m.label, m.config.eval.report_ks, m.results)


def headline_row(label: str, views: Mapping[str, registry.View]) -> dict:
    """The few numbers of a model that go side by side in tables: every evaluator's headline."""
    return {"model": label, **{k: v for view in views.values() for k, v in view.headline.items()}}


def headline(m: ModelResult) -> dict:
    return headline_row(m.label, views_of(m))


def rows(m: ModelResult, name: str) -> list[dict]:
    """One evaluator's table rows of a model, each naming the model."""
    return [{"model": m.label, **row} for row in views_of(m)[name].rows] if name in m.results else []


def evaluator_sections(label: str, views: Mapping[str, registry.View]) -> list[tuple[str, list[str]]]:
    """Report sections for one model: one per evaluator that ran, its table, then its figures."""
    return [
        (
            f"{label}: {registry.title(name)}",
            [pages.table(v.rows)] * bool(v.rows) + [pages.figure(p, f) for f, p in v.figures.items()],
        )
        for name, v in views.items()
    ]


def model_sections(m: ModelResult) -> list[tuple[str, list[str]]]:
    """A study model's sections (evaluator_sections)."""
    return evaluator_sections(m.label, views_of(m))


def findings_section(views: Sequence[registry.View]) -> tuple[str, list[str]]:
    """What the evaluators found, as sentences with the headline numbers, and the figures that show it: the
    first thing a results page says."""
    sentences = [pages.warning(w) for v in views for w in v.warnings]
    sentences += [pages.paragraph(s) for v in views for s in v.findings]
    return "Findings", sentences + [pages.figure(p, "decoded z-points") for v in views for p in v.finding_figures]


def findings(models: Sequence[ModelResult]) -> tuple[str, list[str]]:
    """The findings section of a study's models."""
    return findings_section([v for m in models for v in views_of(m).values()])


def run_sections(label: str, views: Mapping[str, registry.View]) -> list[tuple[str, list[str]]]:
    """The page of one run's evaluation (`ae-jax eval`): the findings, then each evaluator's section."""
    return [findings_section(list(views.values())), *evaluator_sections(label, views)]


def recorded_views(model: dict) -> dict[str, registry.View]:
    """Each evaluator's view of a model as its study's results.json records it (ModelResult.to_json)."""
    results = {name: registry.Result.from_json(name, r) for name, r in model["evaluators"].items()}
    return model_views(recorded_label(model), model["config"]["eval"]["report_ks"], results)


def recorded_label(model: dict) -> str:
    """A recorded model's label with the first 8 hex digits of its config hash, so two configs never share one."""
    return f"{model['label']} [{model['config_hash'][:8]}]"


def recorded_models(study_folder: str) -> dict[str, dict[str, registry.View]]:
    """Each model of a finished study (by its recorded label) and its evaluators' views, from its results.json."""
    with open(os.path.join(study_folder, "results.json")) as f:
        models = json.load(f)["models"]
    return {recorded_label(m): recorded_views(m) for m in models}


def claims_section(models: Sequence[dict]) -> tuple[str, list[str]]:
    """The posts' claims (ae_jax.studies.claims) decided on the recorded models' evidence: one table per model
    label, its seeds together, the claims its evaluators did not measure included, as "not measured"."""
    by_label: dict[str, list[dict]] = {}
    for m in models:
        by_label.setdefault(m["label"], []).append(m)
    parts = []
    for label, replicates in by_label.items():
        seeds = sorted(m["config"]["seed"] for m in replicates)
        parts.append(pages.paragraph(f"{label} (seeds {', '.join(map(str, seeds))}):"))
        parts.append(pages.table([claims.table_row(v) for v in claims.verdicts(replicates)]))
    across = [v for v in claims.prior_verdicts(models) if v.outcome != claims.NOT_MEASURED]
    if across:
        parts.append(pages.paragraph("Across the models (the plain AE's generators against the VAE's prior):"))
        parts.append(pages.table([claims.table_row(v) for v in across]))
    return "Claims of the posts", parts


def across_seeds_section(models: Sequence[ModelResult]) -> tuple[str, list[str]]:
    """Every model label's headline numbers as mean [95% t interval] across its seeds (models of one label)."""
    by_label: dict[str, list[dict]] = {}
    for m in models:
        by_label.setdefault(m.label, []).append(headline(m))
    rows = []
    for label, heads in by_label.items():
        row = {"model": label, "seeds": len(heads)}
        for key in heads[0]:
            values = [h[key] for h in heads]
            spread = all(isinstance(v, (int, float)) for v in values) and claims.t_interval([float(v) for v in values])
            if spread:
                row[key] = f"{spread[0]:.3g} [{spread[1]:.3g}, {spread[2]:.3g}]"
        rows.append(row)
    return "Headline numbers across seeds (mean [95% interval])", [pages.table(rows)]
