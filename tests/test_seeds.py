"""`--seeds N`: a study runs once per seed, records every seed's models, and decides the claims across them."""

import json

import pytest

from ae_jax.cli import main
from ae_jax.config import ConfigError
from ae_jax.studies import framework, pipeline


def seeds_configs(settings, overrides):
    return [framework.model_config(settings["ae"], settings, overrides)]


def seeds_study(settings, out, overrides) -> framework.StudyOutput:
    """A plain AE of the tiny preset, measured by the reconstruction evaluator, with a one-row table."""
    (config,) = seeds_configs(settings, overrides)
    m = pipeline.study_model(config, out, ("reconstruction",))
    return framework.StudyOutput([], [m], {"mse": [{"mse": m.results["reconstruction"].numbers["eval_mse"]}]})


framework.register(
    framework.Study(
        "seeds_study", seeds_study.__doc__, seeds_study, dict(ae="tiny"), {}, ("reconstruction",), seeds_configs
    )
)


def test_replicates_take_consecutive_seeds_from_the_given_one():
    assert framework.seed_overrides(["x=1"], 1) == [(0, ["x=1"])]
    assert framework.seed_overrides(["seed=5"], 2) == [(5, ["seed=5", "seed=5"]), (6, ["seed=5", "seed=6"])]
    with pytest.raises(ConfigError, match="--seeds must be >= 1"):
        framework.seed_overrides([], 0)


def test_a_study_with_two_seeds_records_both_and_decides_claims_across_them(tmp_path, capfd):
    arms_program = ["--set", "train.arms_program=map"]  # auto on a CPU trains them one after another
    assert main(["study", "seeds_study", "--seeds", "2", "--out", str(tmp_path), *arms_program]) == 0
    assert "training 2 arms as one program: tiny-" in capfd.readouterr().err  # the seeds' runs: one program
    folder = tmp_path / "seeds_study-smoke"
    done = json.loads((folder / "results.json").read_text())
    assert done["seeds"] == 2 and [m["config"]["seed"] for m in done["models"]] == [0, 1]
    assert len({m["run_dir"] for m in done["models"]}) == 2  # two trained runs
    assert [r["seed"] for r in done["tables"]["mse"]] == [0, 1]
    assert (folder / "mse.csv").read_text().splitlines()[0] == "seed,mse"
    html = (folder / "index.html").read_text()
    assert "Claims of the posts" in html and "tiny (seeds 0, 1):" in html
    assert "not measured: the distribution evaluator recorded no evidence" in html
    assert "Headline numbers across seeds" in html  # each headline as mean [interval] over the two seeds


def test_a_bad_seed_count_is_refused_before_any_work(tmp_path):
    assert main(["study", "seeds_study", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "seeds_study-smoke").exists()
