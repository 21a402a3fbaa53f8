"""Ablation arms trained as one program (vmapped, unrolled or mapped): each arm's run folder is an ordinary run,
and equals the arm trained alone."""

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
from ae_jax.studies import pipeline
from ae_jax.train import arms, loop, runs
from ae_jax.train.loop import load_run, train, train_together

ARMS = ["model.kl_weight=1e-6,1e-2", "data.task=reconstruct,denoise", "seed=0,3"]
COMPARED = (0, 3, 6)  # every setting on either side


def _arms(workdir, program: str = "auto") -> list:
    base = C.load("tiny_vae_tiny_kl", [f"workdir={workdir}", "train.epochs=2", f"train.arms_program={program}"])
    return arms.arm_configs(base, ARMS)


@pytest.fixture(scope="module")
def solo_runs(tmp_path_factory):
    """Arms COMPARED trained alone, once for every program: {arm: (result, run folder)}."""
    workdir = tmp_path_factory.mktemp("solo")
    return {i: (train(c), c.run_dir) for i, c in enumerate(_arms(workdir)) if i in COMPARED}


@pytest.mark.parametrize("program", ["vmap", "unroll", "map"])
def test_arms_match_the_same_arms_trained_alone(tmp_path, program, solo_runs, log_messages):
    configs = _arms(tmp_path, program)
    assert len(configs) == 8 and len({c.run_dir for c in configs}) == 8
    together = train_together(configs)
    assert f"8 arms in one program: train.arms_program={program}" in log_messages
    for i, (solo, solo_dir) in solo_runs.items():
        config, result = configs[i], together[i]
        np.testing.assert_allclose(result["eval_loss"], solo["eval_loss"], rtol=1e-6)
        np.testing.assert_allclose(result["train_loss"], solo["train_loss"], rtol=1e-6)
        saved = runs.load_run_config(config.run_dir)
        assert (saved.model.kl_weight, saved.data.task, saved.seed) == (
            config.model.kl_weight,
            config.data.task,
            config.seed,
        )
        # one compiled program against another: equal to within an ulp or two, not bit for bit (XLA fuses them apart)
        for a, b in zip(jax.tree.leaves(load_run(config.run_dir)[2]), jax.tree.leaves(load_run(solo_dir)[2])):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    lines = [json.loads(x) for x in open(os.path.join(configs[5].run_dir, "metrics.jsonl"))]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert os.path.isfile(encode_run(configs[5].run_dir, "valid")["valid"])  # an ordinary run


def test_auto_arms_program_is_the_one_measured_fastest_on_the_backend():
    auto, chosen = C.load("tiny"), C.load("tiny", ["train.arms_program=unroll"])
    assert [arms.program(auto, backend) for backend in ("cpu", "gpu", "tpu")] == ["separate", "map", "vmap"]
    assert arms.program(chosen, "tpu") == "unroll"


def test_separate_arms_are_the_runs_trained_alone_bit_for_bit(tmp_path, solo_runs, log_messages):
    configs = _arms(tmp_path, "separate")
    together = train_together(configs)
    assert not any("in one program" in m for m in log_messages)
    for i, (solo, solo_dir) in solo_runs.items():
        assert together[i]["eval_loss"] == solo["eval_loss"]
        for a, b in zip(jax.tree.leaves(load_run(configs[i].run_dir)[2]), jax.tree.leaves(load_run(solo_dir)[2])):
            np.testing.assert_array_equal(a, b)


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


def test_configs_are_grouped_by_the_program_they_can_share():
    seeds = [C.load("tiny", [f"seed={s}", f"name=ae{s}"]) for s in (0, 1)]
    vaes = [
        C.load("tiny_vae_tiny_kl", [f"seed={s}", f"model.kl_weight={w}", f"name=vae{s}"])
        for s, w in ((0, 1e-6), (1, 1))
    ]
    wider = C.load("tiny", ["seed=2", "model.z_dim=3"])
    groups = arms.program_groups([seeds[0], vaes[0], wider, seeds[1], vaes[1]])
    assert [[c.name for c in g] for g in groups] == [["ae0", "ae1"], ["vae0", "vae1"], [wider.name]]
    for group in groups:
        arms.check_same_program(group)


def test_a_study_stops_when_a_signal_stops_its_arms_program(tmp_path, monkeypatch):
    """Not at the next group: the signal that stopped the arms stops the study (and its exit status)."""
    configs = arms.arm_configs(C.load("tiny", [f"workdir={tmp_path}", "train.arms_program=map"]), ["seed=0,1"])
    stopped = {"status": "interrupted by SIGTERM", "step": 3, "signal": 15}
    calls = []
    monkeypatch.setattr(loop, "train_together", lambda group, resume: calls.append(group) or [stopped] * len(group))
    wider = [C.override(c, ["model.z_dim=8"]) for c in configs]
    with pytest.raises(runs.Interrupted, match="interrupted by SIGTERM; run the same command again") as raised:
        pipeline.train_arms_together(configs + wider)
    assert raised.value.signal == 15 and len(calls) == 1
