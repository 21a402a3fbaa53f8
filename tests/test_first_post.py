"""The first_post and denoising studies: post I's z_dim, denoising and MNIST claims at smoke size, and the
ordering rule."""

import json
import os
import shutil

import page_sections
import pytest
import smoke_study

from ae_jax.studies import claims
from ae_jax.studies.catalogue import ordering_verdict


def test_the_ordering_is_supported_only_when_every_step_up_in_z_dim_lowers_the_mse():
    assert ordering_verdict([(0.001, 0.003), (0.0005, 0.002)]) == claims.SUPPORTED


def test_the_ordering_is_refuted_when_any_step_up_in_z_dim_raises_the_mse():
    assert ordering_verdict([(0.001, 0.003), (-0.002, -0.0001)]) == claims.REFUTED


def test_an_interval_across_zero_leaves_the_ordering_inconclusive():
    assert ordering_verdict([(0.001, 0.003), (-0.001, 0.002)]) == claims.INCONCLUSIVE


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The results folder of the first_post and denoising studies at smoke size."""
    out = str(tmp_path_factory.mktemp("first_post"))
    for study in ("first_post", "denoising"):
        smoke_study.run_and_check(study, out)
    return out


def _done(out: str, study: str) -> dict:
    return json.load(open(os.path.join(out, f"{study}-smoke", "results.json")))


def test_the_smoke_pages_have_the_three_parts_their_figures_and_the_rules_verdicts(smoke):
    html = open(os.path.join(smoke, "first_post-smoke", "index.html")).read()
    html += open(os.path.join(smoke, "denoising-smoke", "index.html")).read()
    for title in ("z_dim 512 against 256", "denoising almost totally obscured images", "MNIST at z_dim 2, 4 and 12"):
        assert f"Post I: {title}" in html
    assert "z_dim = 12 gives a really good reconstruction quality" in html and "Held-out MSE is a weak proxy" in html
    for labels in ("(z_dim=4, z_dim=8): ", "(z_dim=2, z_dim=4, z_dim=12): "):
        line = html.split(f"Verdict: MSE falls as z_dim grows {labels}")[1].split(".")[0]
        assert line in (claims.SUPPORTED, claims.REFUTED, claims.INCONCLUSIVE)
    for study, stem in (
        ("first_post", "first_post_z_dim"),
        ("denoising", "denoising"),
        ("first_post", "first_post_mnist"),
    ):
        for ext in ("png", "csv"):
            assert os.path.isfile(os.path.join(smoke, f"{study}-smoke", f"{stem}.{ext}"))
    assert html.count('<img src="data:image/png;base64,') >= 3


def test_each_mse_is_the_reconstruction_evaluators_with_an_interval_over_held_out_images(smoke):
    first, denoising = _done(smoke, "first_post"), _done(smoke, "denoising")
    evaluated = {
        m["config_hash"][:8]: m["evaluators"]["reconstruction"]["numbers"]
        for m in first["models"] + denoising["models"]
    }
    tables = {**first["tables"], **denoising["tables"]}
    rows = tables["first_post_z_dim"] + tables["denoising"] + tables["first_post_mnist"]
    assert [r["model"] for r in tables["first_post_mnist"]] == ["z_dim=2", "z_dim=4", "z_dim=12"]
    assert [r["corruption"] for r in tables["denoising"]] == [
        "drop_rate=0.8, noise_std=0",
        "drop_rate=0, noise_std=0.5",
    ]
    for row in rows:
        numbers = evaluated[row["run"]]
        assert row["held-out images"] == numbers["eval_images"]
        assert row["held-out mse"] == pytest.approx(numbers["eval_mse"], rel=1e-5)
        assert row["mse 95% low"] < row["held-out mse"] < row["mse 95% high"]
    steps = tables["first_post_mnist_ordering"]
    assert [s["difference"] for s in steps] == ["MSE(z_dim=2) - MSE(z_dim=4)", "MSE(z_dim=4) - MSE(z_dim=12)"]
    assert all(s["95% low"] <= s["estimate"] <= s["95% high"] for s in steps)


def test_results_md_writes_the_post_i_section_from_both_studies_files_keeping_the_others(smoke, tmp_path):
    tables = _done(smoke, "first_post")["tables"]
    lines = page_sections.rewrite_twice(smoke, tmp_path / "results.md", "first_post")
    for part in ("z_dim", "mnist"):
        order = tables[f"first_post_{part}_ordering"]
        verdict = ordering_verdict([(r["95% low"], r["95% high"]) for r in order])
        assert lines.count(f"**MSE falls as z_dim grows: {verdict}.**") >= 1
        assert f"![first_post: first_post_{part}.png](figures/first_post_first_post_{part}.png)" in lines
    figures = ["first_post_denoising.png", "first_post_first_post_mnist.png", "first_post_first_post_z_dim.png"]
    assert sorted(os.listdir(tmp_path / "figures")) == figures
    for row in _done(smoke, "denoising")["tables"]["denoising"]:
        assert any(line.startswith(f"| {row['corruption']} | {row['run']} |") for line in lines)

    alone = shutil.copytree(os.path.join(smoke, "first_post-smoke"), tmp_path / "alone" / "first_post-smoke")
    lines = page_sections.rewrite_twice(str(alone.parent), tmp_path / "alone.md", "first_post")
    assert "denoising: not yet measured." in lines and "Not yet measured: `ae-jax study denoising --full`." in lines
