"""An evaluator defined here alone (registered from this file, no other file edited) runs in a smoke study and
shows on the study page and in docs/results.md: the add-an-evaluator example of docs/architecture.md."""

import os

from ae_jax.evaluators import encode, registry
from ae_jax.studies import framework, pipeline, results_md, views


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """The z-points' largest absolute value and how many points lie outside the unit ball."""
    z = encode.points(ctx)
    outside = int(((z**2).sum(axis=1) > 1).sum())
    return {"max_abs": float(abs(z).max()), "outside_unit_ball": outside, "n_points": int(len(z))}, {}


def view(result: registry.Result, label: str, ks) -> registry.View:
    n = result.numbers
    return registry.View(
        headline={"toy max |z|": n["max_abs"]},
        rows=[{"toy max |z|": n["max_abs"], "toy outside the unit ball": n["outside_unit_ball"]}],
        findings=[f"{label}: toy evaluator found max |z| {n['max_abs']:.3g}."],
    )


registry.register(
    registry.Evaluator("toy", measure, view, inputs=lambda ctx: {"z": encode.points_digest(ctx)}, title="toy check")
)


def toy_study(settings, out, overrides) -> framework.StudyOutput:
    """A plain AE of the tiny preset, measured by the toy evaluator."""
    config = framework.model_config(settings["ae"], settings, overrides)
    m = pipeline.study_model(config, out, ("reconstruction", "toy"))
    return framework.StudyOutput(views.model_sections(m), [m], {})


framework.register(
    framework.Study(
        "toy_study", toy_study.__doc__, toy_study, smoke=dict(ae="tiny"), full={}, evaluators=("reconstruction", "toy")
    )
)


def test_a_toy_evaluator_shows_on_the_study_page_and_in_the_results_document(tmp_path):
    page = framework.run_study("toy_study", full=False, out_dir=str(tmp_path))
    html = open(page).read()
    assert "tiny: toy check" in html and "toy outside the unit ball" in html
    assert "toy evaluator found max |z|" in html  # among the findings
    doc = tmp_path / "results.md"
    assert results_md.main(["--results", str(tmp_path), "--out", str(doc)]) == 0
    text = doc.read_text()
    assert "### toy_study: toy check" in text and "toy evaluator found max |z|" in text
    assert "toy max \\|z\\|" in text and "toy outside the unit ball" in text  # its headline and its table
    assert os.path.isfile(tmp_path / "toy_study-smoke" / "results.json")
