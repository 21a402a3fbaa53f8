"""Every study and the demo at smoke size through `ae-jax study`, so none can rot (trained models are shared
between studies; a study with a module of its own runs there, through the same checks)."""

import json
import os

import pytest
import smoke_study

from ae_jax.cli import main
from ae_jax.studies import claims, results_md
from ae_jax.studies.catalogue import STUDIES, check_overrides, overrides_for, run_study, studies_named


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("experiments"))


RESEARCH_STUDIES = [name for name in STUDIES if name != "demo" and name not in smoke_study.OWN_MODULE]


@pytest.mark.parametrize("name", RESEARCH_STUDIES)
def test_study_runs_at_smoke_size_and_records_its_numbers(name, out_dir):
    smoke_study.run_and_check(name, out_dir)


@pytest.mark.parametrize("name, module", sorted(smoke_study.OWN_MODULE.items()))
def test_a_study_left_to_its_own_module_is_run_there(name, module):
    assert name in STUDIES
    source = open(os.path.join(os.path.dirname(__file__), f"{module}.py")).read()
    assert "smoke_study.run_and_check(" in source and f'"{name}"' in source


def test_results_page_gives_a_verdict_per_claim(out_dir, tmp_path):
    if not os.path.isfile(os.path.join(out_dir, "claims-smoke", "results.json")):  # run above, unless alone
        run_study("claims", full=False, out_dir=out_dir)
    page = tmp_path / "docs" / "results.md"
    assert results_md.main(["--results", out_dir, "--out", str(page), "--title", "smoke"]) == 0
    text = page.read_text()
    lines = text.splitlines()
    summary = lines.index("| claim | post | tiny | tiny_vae_tiny_kl |")  # the summary table first, a column a model
    assert summary < lines.index(f"### {claims.CLAIMS[0].title}")
    for c in claims.CLAIMS:
        section = lines[lines.index(f"### {c.title}") :]
        assert section[2] == f'> "{c.quote}" ({c.post})' and section[4].startswith(f"Rule: {c.rule_text()}")
        verdicts = [line.rsplit("**", 2)[1] for line in section[6:8]]
        assert [line.split(":")[0] for line in section[6:8]] == ["- tiny", "- tiny_vae_tiny_kl"]
        assert all(v.split(" (")[0] in claims.OUTCOMES for v in verdicts), verdicts
    assert "One seed per model: no interval across seeds" in text
    if os.path.isfile(os.path.join(out_dir, "vae_prior-smoke", "results.json")):  # its own section, own study
        prior = lines[lines.index(results_md.PRIOR_HEADING) :]
        assert prior[2].startswith("Setting: ") and prior[4] == f"### {claims.VAES_HELP.title}"
        assert prior[10].rsplit("**", 2)[1].split(" (")[0] in claims.OUTCOMES
    else:
        assert f"{results_md.PRIOR_HEADING}: not yet measured (`ae-jax study vae_prior --full`)" in lines
    assert any(line.startswith("## Ablations") for line in lines) and "Training:" in lines


def test_the_vae_prior_page_judges_each_vaes_prior_beside_the_aes_fitted_generators(out_dir):
    folder = os.path.join(out_dir, "vae_prior-smoke")
    if not os.path.isfile(os.path.join(folder, "results.json")):  # run above, unless alone
        run_study("vae_prior", full=False, out_dir=out_dir)
    done = json.load(open(os.path.join(folder, "results.json")))
    rows = done["tables"]["vae_prior"]
    assert [(r["model"], r["kl_weight"], r["generator"].split("(")[0]) for r in rows] == [
        ("tiny", "- (plain AE)", "full"),
        ("tiny", "- (plain AE)", "mixture"),
        ("tiny_vae_kl_1e-06", 1e-6, "isotropic"),
        ("tiny_vae_kl_1", 1.0, "isotropic"),
        ("held-out images", "-", "real vs real"),
    ]
    for r in rows:
        low, high = map(float, r["FD 95% interval"].split(" to "))
        assert low <= r["judge FD"] <= high and 0 <= r["judge precision"] <= 1 and 0 <= r["judge recall"] <= 1
    trained = {m["label"]: m["config"]["model"] for m in done["models"]}
    assert trained["tiny_vae_kl_1"]["kl_weight"] == 1.0 and not trained["tiny"]["variational"]
    assert [r["model"] for r in done["tables"]["vae_prior_vae_latent"]] == ["tiny_vae_kl_1e-06", "tiny_vae_kl_1"]
    html = open(os.path.join(folder, "index.html")).read()
    assert "VAEs help? The prior through each VAE against the AE&#x27;s fitted generators</h2>" in html
    assert "<table><thead><tr><th>model</th><th>kl_weight</th><th>generator</th><th>judge FD</th>" in html
    assert "kl_weight=1: isotropic(mu=0, sigma=1) through tiny_vae_kl_1 has judge FD " in html
    assert "(the plain AE&#x27;s " in html  # its closest fitted generator, the claim's null
    assert "Across the models (the plain AE&#x27;s generators against the VAE&#x27;s prior):" in html
    assert "VAEs help: their prior decodes closer to the images than the AE&#x27;s best generator" in html


def test_unknown_study_is_refused(out_dir):
    with pytest.raises(ValueError, match="unknown study 'nope'"):
        run_study("nope", full=False, out_dir=out_dir)


def test_all_gives_each_study_the_settings_its_models_read():
    studies = {study.name: study for study in studies_named("all")}
    settings = ["judge.epochs=1", "data.num_images=64"]
    check_overrides(list(studies.values()), settings)  # the demo trains a judge: accepted for `all`
    assert overrides_for(studies["filaments"], settings) == ["data.num_images=64"]
    assert overrides_for(studies["demo"], settings) == settings


def test_quick_demo_is_the_demo_study_and_writes_one_self_contained_page(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    page = tmp_path / "demo-smoke" / "index.html"
    assert not (tmp_path / "demo").exists()  # the full demo's folder is left alone
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"demo: {page}" and printed[1].startswith("  model: tiny [") and "held-out mse: " in printed[1]
    html = page.read_text()
    assert '<img src="data:image/png;base64,' in html and 'src="http' not in html and 'href="http' not in html
    assert '<p class="banner">smoke size: the tiny preset, not a result</p>' in html
    body = html[html.index('<h2 id="s0">') :]
    judge = json.loads((tmp_path / "demo-smoke" / "results.json").read_text())["models"][0]["evaluators"]["judge"]
    quality = judge["numbers"]["judge_quality"]  # the tiny judge's held-out score and its trivial baseline's
    warned = '<p class="warning">tiny: Warning: the judge is no better than its trivial'
    assert (warned in body[: body.index("<p>")]) == (quality["held_out"] <= quality["baseline"])
    body = body[body.index("<p>") :]
    assert body.startswith("<p>tiny reconstructs held-out images with per-pixel MSE")
    assert body.index("data:image/png") < body.index("<table>")  # the decoded grid before any table
    for heading in (
        "AE vs tiny-KL VAE",
        "tiny: z-point distribution",
        "tiny_vae_tiny_kl: generators",
        "tiny: intrinsic dimension",
        "Timings",
        "Claims of the posts",
    ):
        assert heading in html
    done = json.loads((tmp_path / "demo-smoke" / "results.json").read_text())
    judged = done["models"][0]["evaluators"]["judge"]["numbers"]["rows"]
    assert [r["label"] for r in judged[-2:]] == ["reconstructions", "real vs real"]
    assert all(r["judge_frechet"] >= 0 for r in judged)


def test_results_page_states_the_judge_against_its_baseline_and_references(tmp_path):
    from ae_jax.stages import file_digest

    study = tmp_path / "ae_vs_vae"
    net = {"filters": [32, 64, 128], "convs_per_stage": 1, "pool": "flatten"}
    for name, accuracy in (("judge-0123abcd", 0.893), ("judge-stale000", 0.5)):  # the second is no study's judge
        (study / name).mkdir(parents=True)
        info = {"dataset": "celeba", "epochs": 5, "net": net, "valid_accuracy": accuracy, "baseline_accuracy": 0.807}
        (study / name / "judge.json").write_text(json.dumps(info))
    (study / "case1" / "judge").mkdir(parents=True)
    record = {"inputs": {"judge": file_digest(str(study / "judge-0123abcd" / "judge.json"))}}
    (study / "case1" / "judge" / "result.json").write_text(json.dumps(record))
    model = {"evaluators": {"judge": {"folder": str(study / "case1" / "judge")}}}
    (study / "results.json").write_text(json.dumps({"models": [model]}))
    lines = results_md.judge_lines([str(tmp_path)])
    assert len(lines) == 4 and "held-out accuracy 0.893 against the trivial baseline's 0.807" in lines[-1]


@pytest.mark.parametrize("signal, status", [(2, 130), (15, 143)])
def test_a_study_whose_training_is_interrupted_exits_128_plus_the_signal(signal, status, tmp_path, monkeypatch):
    from ae_jax.train import loop

    stopped = {"status": "interrupted by a signal", "step": 3, "signal": signal}
    monkeypatch.setattr(loop, "train", lambda config, resume=False: stopped)
    assert main(["study", "random_points", "--out", str(tmp_path)]) == status


def test_a_judge_worse_than_its_trivial_baseline_is_a_warning_on_the_page(tmp_path):
    from ae_jax.evaluators import judge, registry
    from ae_jax.report import pages
    from ae_jax.studies import views

    rows = [
        {"label": label, "judge_frechet": fd, "judge_precision": 0.5, "judge_recall": 0.5, "judge_images": 10}
        for label, fd in (("full", 3.0), ("reconstructions", 2.0), ("real vs real", 1.0))
    ]
    worse = {"metric": "r2", "held_out": -1.487, "baseline": -0.242}
    numbers = {"rows": rows, "judge_quality": worse}
    view = judge.view(registry.Result("judge", str(tmp_path), "k" * 64, False, numbers, {}), "tiny", (1.0,))
    assert view.warnings == [
        "tiny: Warning: the judge is no better than its trivial baseline (held-out r2 -1.487 against its trivial "
        "baseline's -0.242): its scores mean little."
    ]
    page = pages.write_page(str(tmp_path / "index.html"), "t", views.run_sections("tiny", {"judge": view}))
    assert '<h2 id="s0">Findings</h2><p class="warning">tiny: Warning: the judge is no better' in open(page).read()
    better = {**numbers, "judge_quality": {**worse, "held_out": 0.5}}
    view = judge.view(registry.Result("judge", str(tmp_path), "k" * 64, False, better, {}), "tiny", (1.0,))
    assert not view.warnings and "tiny: The judge's held-out r2 0.500 against" in view.findings[-1]
