"""A study's models as a report shows them, whatever evaluators ran: each evaluator's own view
(ae_jax.evaluators.registry.view) gives headline numbers, table rows, figures and findings sentences; these
functions put them side by side, into page sections and into a findings paragraph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ae_jax.evaluators import registry
from ae_jax.report import pages
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


def model_sections(m: ModelResult) -> list[tuple[str, list[str]]]:
    """Report sections for one model: one per evaluator that ran, its table, then its figures."""
    return [
        (
            f"{m.label}: {registry.title(name)}",
            [pages.table(v.rows)] * bool(v.rows) + [pages.figure(p, f) for f, p in v.figures.items()],
        )
        for name, v in views_of(m).items()
    ]


def findings(models: Sequence[ModelResult]) -> tuple[list[str], list[str]]:
    """What the evaluators found, as sentences with the headline numbers, and the figures that show it: the
    first thing a results page says."""
    views = [v for m in models for v in views_of(m).values()]
    return [s for v in views for s in v.findings], [p for v in views for p in v.finding_figures]
