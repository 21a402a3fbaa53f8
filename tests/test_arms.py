"""Ablation arms trained as one vmapped program: each arm's run folder is an ordinary run, and equals the arm
trained alone."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from ae_jax import config as C
from ae_jax.cli import main
from ae_jax.config import ConfigError
from ae_jax.evaluators.encode import encode_run
from ae_jax.train import arms, runs
from ae_jax.train.loop import load_run, train, train_together


@pytest.mark.parametrize("vectorize", [True, False], ids=["vmapped", "unrolled"])
def test_arms_match_the_same_arms_trained_alone(tmp_path, vectorize):
    base = C.load("tiny_vae_tiny_kl", [f"workdir={tmp_path / 'together'}", "train.epochs=2"])
    configs = arms.arm_configs(base, ["model.kl_weight=1e-6,1e-2", "data.task=reconstruct,denoise", "seed=0,3"])
    assert len(configs) == 8 and len({c.run_dir for c in configs}) == 8
    together = train_together(configs, vectorize=vectorize)
    for config, result in list(zip(configs, together))[::3]:  # arms 0, 3, 6: every setting on either side
        solo = train(C.override(config, [f"workdir={tmp_path / 'solo'}"]))
        np.testing.assert_allclose(result["eval_loss"], solo["eval_loss"], rtol=1e-4)
        np.testing.assert_allclose(result["train_loss"], solo["train_loss"], rtol=1e-4)
        saved = runs.load_run_config(config.run_dir)
        assert (saved.model.kl_weight, saved.data.task, saved.seed) == (
            config.model.kl_weight,
            config.data.task,
            config.seed,
        )
        arm_params = jax.tree.leaves(load_run(config.run_dir)[2])
        solo_params = jax.tree.leaves(load_run(os.path.join(tmp_path, "solo", config.name))[2])
        for a, b in zip(arm_params, solo_params):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    lines = [json.loads(x) for x in open(os.path.join(configs[5].run_dir, "metrics.jsonl"))]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert os.path.isfile(encode_run(configs[5].run_dir, "valid")["valid"])  # an ordinary run


def test_arms_resume_where_they_stopped(tmp_path):
    base = C.load("tiny", [f"workdir={tmp_path}", "train.epochs=1"])
    configs = arms.arm_configs(base, ["train.learning_rate=1e-3,3e-3"])
    train_together(configs)
    longer = [C.override(c, ["train.epochs=2"]) for c in configs]
    resumed = train_together(longer, resume=True)
    straight = train_together([C.override(c, [f"workdir={tmp_path / 'straight'}"]) for c in longer])
    for a, b in zip(resumed, straight):
        assert a["eval_loss"] == b["eval_loss"] and a["step"] == b["step"] == 12


@pytest.mark.parametrize("spec", ["model.z_dim=4,8", "model.act=relu,selu", "data.image_size=16,32"])
def test_arms_that_change_the_program_are_refused_naming_the_key(spec):
    with pytest.raises(ConfigError, match=spec.split("=")[0].replace(".", r"\.") + ".* changes the program"):
        arms.arm_configs(C.load("tiny"), [spec])


def test_arms_specs_are_checked():
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        arms.parse(["model.kl_weight"])
    with pytest.raises(ConfigError, match="names seed twice"):
        arms.parse(["seed=0,1", "seed=2"])
    with pytest.raises(ConfigError, match="model.kl_weight"):
        arms.arm_configs(C.load("tiny"), ["model.kl_weight=0,lots"])


def test_cli_trains_arms_into_run_folders(tmp_path, capsys):
    args = ["train", "--config", "tiny", "--set", f"workdir={tmp_path}", "--arms", "seed=0,1"]
    assert main(args + ["--set", "train.steps_per_epoch=2"]) == 0
    out = capsys.readouterr().out
    for seed in (0, 1):
        assert f"run folder: {tmp_path}/tiny-seed={seed}" in out
        assert runs.load_run_config(str(tmp_path / f"tiny-seed={seed}")).seed == seed
    assert main(["train", "--config", "tiny", "--set", f"workdir={tmp_path}", "--arms", "model.z_dim=4,8"]) == 2
    assert "model.z_dim changes the program" in capsys.readouterr().err
