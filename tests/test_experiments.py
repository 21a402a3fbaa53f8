"""Every study and the demo at smoke size, so none can rot (trained models are shared between studies)."""

import json
import os

import pytest

from ae_jax.demo import run_demo
from experiments import results_md
from experiments.studies import STUDIES, run_study


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("experiments"))


@pytest.mark.parametrize("name", list(STUDIES))
def test_study_runs_at_smoke_size(name, out_dir):
    page = run_study(name, full=False, out_dir=out_dir)
    html = open(page).read()
    assert "<table>" in html or '<img src="data:image/png;base64,' in html
    with open(os.path.join(out_dir, name, "results.json")) as f:
        assert json.load(f)["size"] == "smoke"
    assert any(f.endswith(".csv") for f in os.listdir(os.path.join(out_dir, name)))


def test_results_page_gives_a_verdict_per_claim(out_dir, tmp_path):
    for name in ("random_points", "component_distributions", "filaments", "ae_vs_vae"):  # run above, unless alone
        if not os.path.isfile(os.path.join(out_dir, name, "results.json")):
            run_study(name, full=False, out_dir=out_dir)
    page = tmp_path / "docs" / "results.md"
    assert results_md.main(["--results", out_dir, "--out", str(page), "--title", "smoke"]) == 0
    lines = page.read_text().splitlines()
    titles = [
        "Components are Gaussian-like, with a few dominant ones",
        "The radius distribution peaks where the components put it",
        "Uniform generators: zero hits for b >= 3 at 3 half-widths, many for b ~ 1-1.5 at 2 half-widths",
        "The radius law of uniform generators",
        "Filaments and voids",
    ]
    verdicts = {t: next(line for line in lines if line.startswith(f"## {t}: "))[len(t) + 5 :] for t in titles}
    assert all("not yet measured" not in v for v in verdicts.values()), verdicts
    # the smoke studies train no judge, so that claim stays open
    assert "## Fitted Gaussians decode to faces (in the judge's eyes): not yet measured" in lines
    figures = os.listdir(tmp_path / "docs" / "figures")
    assert "study_3_faces_intrinsic_dimension.png" in figures  # figures sit next to their claim's numbers
    assert "study_3_faces_tsne_raw.png" not in figures  # the smoke size runs no t-SNE


def test_unknown_study_is_refused(out_dir):
    with pytest.raises(ValueError, match="unknown study 'nope'"):
        run_study("nope", full=False, out_dir=out_dir)


def test_quick_demo_writes_one_self_contained_page(tmp_path):
    page = run_demo(str(tmp_path), quick=True, log=lambda s: None)
    html = open(page).read()
    assert '<img src="data:image/png;base64,' in html and 'src="http' not in html
    for heading in (
        "AE vs tiny-KL VAE",
        "faces: z-point distribution",
        "faces_vae_tiny_kl: generators",
        "Intrinsic dimension",
        "Timings",
    ):
        assert heading in html


def test_results_page_names_a_study_model_by_its_name_override(tmp_path):
    folder = tmp_path / "random_points"
    folder.mkdir()
    done = {"overrides": ["workdir=runs", "name=case1_e10"], "params": {"ae": "case1"}}
    (folder / "results.json").write_text(json.dumps(done))
    assert results_md._study_model(str(tmp_path), "random_points") == "case1_e10"
    (folder / "results.json").write_text(json.dumps({**done, "overrides": ["workdir=runs"]}))
    assert results_md._study_model(str(tmp_path), "random_points") == "case1"
    assert results_md._study_model(str(tmp_path), "filaments") is None
