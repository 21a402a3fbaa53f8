"""Every stage is keyed by its inputs: a changed setting trains, encodes or analyses again instead of
reusing another config's output, an unchanged one is reused, and every evaluator runs on the tiny preset."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ae_jax import config as C
from ae_jax import stages
from ae_jax.cli import main
from ae_jax.evaluators import encode, registry
from ae_jax.studies import pipeline
from ae_jax.train import runs


def _study(tmp_path, *overrides, names=("distribution",)):
    config = C.load("tiny", [f"workdir={tmp_path}/runs", *overrides])
    return pipeline.study_model(config, str(tmp_path / "out"), names)


def _folder_of_images(root, seed, n=40):
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), np.uint8)).save(os.path.join(root, f"{i:03d}.png"))
    return root


def test_the_same_config_is_reused_and_says_so(tmp_path, log_messages):
    first = _study(tmp_path)
    log_messages.clear()
    again = _study(tmp_path)
    assert again.key == first.key and again.results["distribution"].reused
    assert any("reused (trained for 1 epochs" in m for m in log_messages)
    assert any(m.startswith("distribution (") and "reused (inputs unchanged" in m for m in log_messages)


@pytest.mark.parametrize(
    "change",
    [["model.z_dim=6"], ["model.variational=true", "model.kl_weight=1e-3"], ["data.task=denoise"]],
    ids=["z_dim", "kl_weight", "task"],
)
def test_a_changed_training_setting_trains_a_new_run(change, tmp_path):
    base = _study(tmp_path)
    changed = _study(tmp_path, *change)
    assert changed.key != base.key and changed.config.run_dir != base.config.run_dir
    assert not changed.results["distribution"].reused
    z_dim = C.load("tiny", change).model.z_dim
    assert changed.results["distribution"].numbers["z_dim"] == z_dim
    assert np.load(os.path.join(changed.config.run_dir, "z_train.npy")).shape[1] == z_dim


def test_the_stale_reuse_sequence_now_uses_the_new_z_dim(tmp_path):
    """`random_points`, then the same with model.z_dim=8 (the tiny preset's is 4): a new run and its z-points."""
    from ae_jax.studies.catalogue import run_study

    run_study("random_points", False, str(tmp_path))
    run_study("random_points", False, str(tmp_path), ["model.z_dim=8"])
    done = json.load(open(tmp_path / "random_points-smoke" / "results.json"))
    (model,) = done["models"]
    assert model["config"]["model"]["z_dim"] == 8
    assert model["evaluators"]["generators"]["numbers"]["z_dim"] == 8
    assert len(os.listdir(tmp_path / "runs")) == 2


def test_a_changed_data_folder_trains_a_new_run(tmp_path):
    images = ["data.name=images", "data.valid_fraction=0.25"]
    a = _study(tmp_path, *images, f"data.dir={_folder_of_images(str(tmp_path / 'a'), 0)}")
    b = _study(tmp_path, *images, f"data.dir={_folder_of_images(str(tmp_path / 'b'), 1)}")
    assert a.key != b.key
    assert a.results["distribution"].numbers["mu"] != b.results["distribution"].numbers["mu"]


def test_a_changed_bin_width_analyses_again_and_keeps_both(tmp_path, log_messages):
    base = _study(tmp_path)
    log_messages.clear()
    finer = _study(tmp_path, "distribution.bin_width=0.05")
    assert finer.key == base.key  # the same trained run ...
    assert not finer.results["distribution"].reused  # ... analysed again
    assert finer.results["distribution"].numbers["histogram"]["bin_width"] == 0.05
    assert finer.results["distribution"].folder != base.results["distribution"].folder
    assert any("computing" in m and m.startswith("distribution") for m in log_messages)
    # a per-study evaluator too keeps each setting's result in its own folder, and reuses it by its key
    gen = _study(tmp_path, names=("generators",))
    wider = _study(tmp_path, "distribution.bin_width=0.05", names=("generators",))
    assert not wider.results["generators"].reused and os.path.basename(wider.results["generators"].folder) == (
        f"generators-{wider.results['generators'].key[:8]}"
    )
    assert os.path.isfile(os.path.join(gen.results["generators"].folder, "result.json"))
    assert _study(tmp_path, names=("generators",)).results["generators"] == dataclasses.replace(
        gen.results["generators"], reused=True
    )


def test_a_retrained_run_encodes_again(tmp_path, log_messages):
    m = _study(tmp_path)
    z_file = os.path.join(m.config.run_dir, "z_train.npy")
    record = stages.read_json(os.path.join(m.config.run_dir, "z_train.json"))
    stages.write_json(os.path.join(m.config.run_dir, "z_train.json"), {**record, "key": "stale"})
    log_messages.clear()
    ctx = registry.RunContext(m.config, str(tmp_path / "o"), run_dir=m.config.run_dir)
    assert encode.points_file(ctx) == z_file and any("z-points" in x and "recomputing" in x for x in log_messages)


def test_every_evaluator_runs_on_the_tiny_preset(tmp_path):
    config = C.load("tiny", [f"workdir={tmp_path}/runs"])
    judge_dir = pipeline.ensure_judge(config, str(tmp_path))
    m = pipeline.study_model(config, str(tmp_path / "out"), tuple(registry.evaluators()), judge_dir)
    assert set(m.results) == set(registry.evaluators())
    for name, result in m.results.items():
        assert os.path.isfile(os.path.join(result.folder, "config.json")), name
        assert C.from_dict(json.load(open(os.path.join(result.folder, "config.json")))) == m.config
        assert all(os.path.isfile(p) for p in result.figures.values()), name
    assert m.results["reconstruction"].numbers["eval_mse"] == pytest.approx(m.train["eval_mse"], rel=1e-6)
    assert m.results["encode"].numbers["n_points"] == 96
    assert len(m.results["judge"].numbers["rows"]) == len(config.generators.specs) + 2  # + the two references


def test_eval_command_runs_a_subset_on_a_finished_run(tmp_path, capsys):
    m = _study(tmp_path)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                m.config.run_dir,
                "--evals",
                "encode,distribution",
                "--out",
                str(out),
                "--set",
                "distribution.bin_width=0.5",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "distribution: written in" in text and "  dominant components: " in text  # its headline numbers
    assert f"page: {out / 'index.html'}" in text and ": z-point distribution</h2>" in (out / "index.html").read_text()
    (folder,) = out.glob("distribution-*")
    saved = json.load(open(folder / "config.json"))
    assert saved["distribution"]["bin_width"] == 0.5 and C.from_dict(saved).model == m.config.model
    assert (
        main(
            [
                "eval",
                m.config.run_dir,
                "--evals",
                "distribution",
                "--out",
                str(out),
                "--set",
                "distribution.bin_width=0.5",
            ]
        )
        == 0
    )
    assert "distribution: reused" in capsys.readouterr().out
    assert main(["eval", m.config.run_dir, "--evals", "distribution", "--out", str(out)]) == 0  # the default 0.25
    assert "distribution: written" in capsys.readouterr().out and len(list(out.glob("distribution-*"))) == 2


def test_a_run_folder_holding_another_config_is_refused_naming_the_keys(tmp_path):
    from ae_jax.train.loop import TrainingError

    trained = _study(tmp_path)
    other, _ = runs.keyed_run(C.load("tiny", [f"workdir={tmp_path}/runs", "model.z_dim=6"]))
    shutil.copytree(trained.config.run_dir, other.run_dir)  # a folder renamed by hand
    with pytest.raises(TrainingError, match="was trained with another config: model.z_dim: 4 -> 6"):
        _study(tmp_path, "model.z_dim=6")


def test_an_output_folder_an_evaluator_did_not_write_is_not_deleted(tmp_path):
    z = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    args = ["analyze", "--z", str(tmp_path / "z.npy"), "--out", str(tmp_path / "out"), "--set", "distribution.tsne=0"]
    assert main(args) == 0
    (mine,) = (tmp_path / "out").glob("distribution-*")
    shutil.rmtree(mine)  # the folder of this setting, made by hand
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    assert main(args) == 2 and (mine / "notes.txt").read_text() == "my notes"
    (mine / "notes.txt").unlink()
    assert main(args) == 0 and (mine / "result.json").is_file()


def test_eval_of_a_study_folder_says_which_run_folders_to_pass(tmp_path, capsys):
    study = tmp_path / "demo"
    study.mkdir()
    (study / "results.json").write_text(json.dumps({"study": "demo", "models": []}))
    (tmp_path / "runs" / "tiny-0123abcd").mkdir(parents=True)
    assert main(["eval", str(study)]) == 2
    error = capsys.readouterr().err
    assert "is the folder of study 'demo', not a run" in error and "tiny-0123abcd" in error


def test_a_config_is_trained_once_whatever_its_name(tmp_path, log_messages):
    first = _study(tmp_path)
    log_messages.clear()
    arm = _study(tmp_path, "name=ablation_arm_equal_to_the_baseline")
    assert arm.config.run_dir == first.config.run_dir and arm.label == "ablation_arm_equal_to_the_baseline"
    assert any("using that run" in m for m in log_messages) and len(os.listdir(tmp_path / "runs")) == 1


@pytest.mark.parametrize(
    "setting",
    [
        "name=other",
        "workdir=/elsewhere",
        "data.cache_dir=/elsewhere",
        "train.checkpoint_every_steps=7",
        "train.keep_checkpoints=9",
        "train.prefetch=1",
        "train.eval_images=5",
        "train.grid_images=2",
    ],
)
def test_where_outputs_go_does_not_change_the_training_key(setting):
    base = C.load("tiny")
    assert runs.training_key(C.load("tiny", [setting])) == runs.training_key(base)
    assert runs.training_key(C.load("tiny", ["train.epochs=2"])) != runs.training_key(base)


def test_encode_and_judge_print_their_numbers(tmp_path, capsys):
    m = _study(tmp_path)
    assert main(["encode", m.config.run_dir, "--split", "valid", "--out", str(tmp_path / "z.npy")]) == 0
    assert capsys.readouterr().out == f"valid: 10 z-points of 4 components in {tmp_path / 'z.npy'}\n"
    assert main(["judge", "--config", "tiny", "--out", str(tmp_path / "judge")]) == 0
    quality = json.load(open(tmp_path / "judge" / "judge.json"))
    said = f"held-out r2 {quality['valid_r2']:.3f} against its trivial baseline's {quality['baseline_r2']:.3f}"
    worse = quality["valid_r2"] <= quality["baseline_r2"]
    assert capsys.readouterr().out.splitlines()[1].endswith(said + ("): its scores mean little." if worse else "."))
