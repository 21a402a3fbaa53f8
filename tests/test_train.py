import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ae_jax import config as C
from ae_jax.cli import main
from ae_jax.train.loop import TrainingError, load_run, train
from ae_jax.train.runs import has_checkpoints, keyed_run, start_from_shorter_twin


def tiny(tmp_path, *overrides):
    """The shared tiny preset, writing under tmp_path."""
    return C.load("tiny", [f"workdir={tmp_path}", *overrides])


def leaves(params):
    return [np.asarray(x) for x in jax.tree.leaves(params)]


def test_a_few_epochs_lower_the_loss_and_write_the_run_folder(tmp_path):
    config = tiny(tmp_path, "train.epochs=3")
    result = train(config)
    lines = [json.loads(x) for x in open(os.path.join(config.run_dir, "metrics.jsonl"))]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    assert lines[-1]["eval_loss"] < lines[0]["eval_loss"]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert result["eval_psnr"] > 0 and result["images_per_s"] > 0
    assert os.path.isfile(os.path.join(config.run_dir, "reconstructions_epoch003.png"))
    assert C.load(os.path.join(config.run_dir, "config.json")) == config


def test_vae_and_denoising_tasks_train(tmp_path):
    config = tiny(
        tmp_path,
        "train.epochs=1",
        "model.variational=true",
        "model.kl_weight=1e-3",
        "data.task=denoise",
        "data.drop_rate=0.2",
        "name=vae",
    )
    result = train(config)
    assert result["eval_kl"] > 0 and 0 < result["kl_share"] < 1


def test_resume_ends_with_the_parameters_of_an_uninterrupted_run(tmp_path):
    full = tiny(tmp_path, "train.epochs=2", "name=full")
    train(full)
    half = tiny(tmp_path, "train.epochs=1", "name=half")
    train(half)
    with pytest.raises(TrainingError, match="--resume"):
        train(tiny(tmp_path, "train.epochs=2", "name=half"))
    train(tiny(tmp_path, "train.epochs=2", "name=half"), resume=True)
    for a, b in zip(leaves(load_run(full.run_dir)[2]), leaves(load_run(half.run_dir)[2])):
        np.testing.assert_array_equal(a, b)


def test_a_longer_run_starts_from_its_finished_shorter_twin_and_trains_what_a_run_from_step_0_trains(
    tmp_path, log_messages, monkeypatch
):
    from ae_jax.studies.pipeline import ensure_trained

    scratch = ensure_trained(tiny(tmp_path / "scratch", "train.epochs=2", "name=t"))[0]
    ensure_trained(tiny(tmp_path / "grid", "train.epochs=1", "name=t"))
    ensure_trained(tiny(tmp_path / "grid", "train.epochs=3", "name=t", "seed=1"))  # another seed: no twin
    copytree = shutil.copytree

    def killed_in_the_checkpoint_copy(source, target, *args, **kwargs):
        copytree(source, target, *args, **kwargs)
        if os.path.basename(os.path.dirname(source)) == "ckpt":  # the checkpoint, however it is copied
            raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copytree", killed_in_the_checkpoint_copy)
    half_seeded = keyed_run(tiny(tmp_path / "grid", "train.epochs=2", "name=t"))[0]
    with pytest.raises(KeyboardInterrupt):
        start_from_shorter_twin(half_seeded)
    assert not has_checkpoints(half_seeded.run_dir)  # seeded again below, not resumed from half a checkpoint
    monkeypatch.undo()
    log_messages.clear()
    longer = ensure_trained(tiny(tmp_path / "grid", "train.epochs=2", "name=t"))[0]
    one_epoch = [m for m in log_messages if "starting from the 1 epochs of" in m]
    assert len(one_epoch) == 1 and "resumed" in " ".join(log_messages), log_messages
    for a, b in zip(leaves(load_run(scratch.run_dir)[2]), leaves(load_run(longer.run_dir)[2])):
        np.testing.assert_array_equal(a, b)
    records = [[json.loads(x) for x in open(os.path.join(r.run_dir, "metrics.jsonl"))] for r in (scratch, longer)]
    assert [(r["epoch"], r["train_loss"]) for r in records[0]] == [(r["epoch"], r["train_loss"]) for r in records[1]]
    assert os.path.isfile(os.path.join(longer.run_dir, "reconstructions_epoch001.png"))


def test_non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny(tmp_path, "train.epochs=2", "train.optimizer=sgd", "train.learning_rate=1e30")
    with pytest.raises(TrainingError, match=r"non-finite loss .* at step \d+.*learning rate"):
        train(config)
    steps = sorted(os.listdir(os.path.join(config.run_dir, "ckpt")))
    assert all(int(s) < 6 for s in steps if s.isdigit())


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, log_messages):
    config = tiny(tmp_path, "train.epochs=2")
    train(config)
    ckpt = os.path.join(config.run_dir, "ckpt")
    latest = max(int(s) for s in os.listdir(ckpt) if s.isdigit())
    for root, _, files in os.walk(os.path.join(ckpt, str(latest))):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
    result = train(tiny(tmp_path, "train.epochs=3"), resume=True)
    assert any(f"step {latest}" in m and "unreadable" in m for m in log_messages)
    assert result["epoch"] == 3


def _run_cli(args, env_extra=None, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "ae_jax.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _wait_for_checkpoint(ckpt_dir, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.isdir(ckpt_dir) and any(s.isdigit() for s in os.listdir(ckpt_dir)):
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = [
        "train",
        "--config",
        "tiny",
        "--set",
        f"workdir={tmp_path}",
        "--set",
        "train.epochs=4",
        "--set",
        "train.checkpoint_every_steps=3",
    ]
    proc = _run_cli(args + ["--set", "name=killed"])
    _wait_for_checkpoint(os.path.join(tmp_path, "killed", "ckpt"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    metrics = os.path.join(tmp_path, "killed", "metrics.jsonl")
    assert not os.path.exists(metrics) or len(open(metrics).readlines()) < 4, "the kill came too late"
    resumed = _run_cli(args + ["--set", "name=killed", "--resume"])
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resumed" in out, out
    uninterrupted = _run_cli(args + ["--set", "name=whole"])
    out, _ = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, out
    for a, b in zip(
        leaves(load_run(os.path.join(tmp_path, "killed"))[2]), leaves(load_run(os.path.join(tmp_path, "whole"))[2])
    ):
        np.testing.assert_array_equal(a, b)


KILLED_AT_A_SAVE = """
import os, sys
from ae_jax import config as C
from ae_jax.train import checkpoint, loop

workdir, when, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
save = checkpoint.CheckpointStore.save


def dying_save(self, at, state):
    if at == step and when == "before":
        os._exit(9)
    save(self, at, state)
    if at == step:
        self.wait()
        os._exit(9)


checkpoint.CheckpointStore.save = dying_save
loop.train(C.load("tiny", [f"workdir={workdir}", *sys.argv[4:]]))
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_killed_at_the_epoch_end_checkpoint_records_every_epoch_once_after_resume(tmp_path, when):
    """Killed as it saves epoch 2's checkpoint (step 12 of 6-step epochs; one at step 8 within the epoch), before or
    after the save, then resumed: metrics.jsonl, steps.jsonl and the grids hold every epoch and step once."""
    settings = ["train.epochs=3", "train.checkpoint_every_steps=4"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_A_SAVE, str(tmp_path), when, "12", *settings],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == 9, killed.stderr[-3000:]
    config = tiny(tmp_path, *settings)
    assert train(config, resume=True)["epoch"] == 3
    epochs = [json.loads(x) for x in open(os.path.join(config.run_dir, "metrics.jsonl"))]
    steps = [json.loads(x)["step"] for x in open(os.path.join(config.run_dir, "steps.jsonl"))]
    assert [(e["epoch"], e["step"]) for e in epochs] == [(1, 6), (2, 12), (3, 18)] and steps == list(range(1, 19))
    for epoch in (1, 2, 3):
        assert os.path.isfile(os.path.join(config.run_dir, f"reconstructions_epoch{epoch:03d}.png"))


SIGNALS = [
    ([], signal.SIGINT),
    (["--arms", "seed=0,1", "--set", "train.arms_program=map"], signal.SIGTERM),
    (["--arms", "seed=0,1", "--set", "train.arms_program=separate"], signal.SIGTERM),
]


@pytest.mark.parametrize("arms, sig", SIGNALS, ids=["one run, SIGINT", "two arms, SIGTERM", "arms one by one"])
def test_a_signal_saves_a_checkpoint_exits_128_plus_its_number_and_the_run_folders_resume(tmp_path, arms, sig):
    """`train && eval` must not evaluate a half-trained model: SIGINT exits 130, SIGTERM 143, after the save; the
    message's `ae-jax train --resume RUN_FOLDER ...` then finishes the epoch it stopped in (arms trained one by one:
    the first's, and the second, not started, from step 0)."""
    args = [
        "train",
        "--config",
        "tiny",
        "--set",
        f"workdir={tmp_path}",
        "--set",
        "train.epochs=200",
        "--set",
        "train.checkpoint_every_steps=2",
    ]
    runs = ["tiny-seed=0", "tiny-seed=1"] if arms else ["tiny"]
    proc = _run_cli(args + arms)
    one_by_one = "train.arms_program=separate" in arms
    _wait_for_checkpoint(os.path.join(tmp_path, runs[0 if one_by_one else -1], "ckpt"), proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig and f"{sig.name} received: checkpoint saved at step" in out, out
    step = int(re.search(r"checkpoint saved at step (\d+)", out)[1])
    for run in runs[:1] if one_by_one else runs:
        assert str(step) in os.listdir(os.path.join(tmp_path, run, "ckpt"))
    if one_by_one:
        assert not os.path.isdir(os.path.join(tmp_path, runs[1], "ckpt")) and "1 of 2 arms not started" in out, out
    folders = [os.path.join(tmp_path, run) for run in runs]
    assert f"continue with: ae-jax train --resume {' '.join(folders)}" in out
    resumed = _run_cli(["train", "--resume", *folders, "--set", f"train.epochs={-(-step // 6)}"])  # 6 steps an epoch
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and f"from step {step}" in out, out


@pytest.fixture
def one_epoch_run(tmp_path):
    """The run folder of one epoch of tiny, named intr."""
    config = tiny(tmp_path, "train.epochs=1", "name=intr")
    train(config)
    return config.run_dir


def test_resume_of_a_run_without_checkpoints_is_refused_naming_the_runs_nearby(tmp_path, one_epoch_run, capsys):
    assert main(["train", "--config", "tiny", "--set", f"workdir={tmp_path}", "--set", "name=intx", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/intx holds no checkpoint to resume; runs with checkpoints in {tmp_path}: intr" in err, err
    assert "did you mean intr?" in err and os.listdir(tmp_path) == ["intr"]


def test_resume_of_a_run_folder_takes_its_config_and_only_settings_that_may_change(tmp_path, one_epoch_run, capsys):
    assert main(["train", "--resume", one_epoch_run, "--set", "model.z_dim=4", "--set", "train.epochs=2"]) == 2
    assert "--set model.z_dim: may not change when resuming" in capsys.readouterr().err
    differs = ["--config", "tiny", "--set", f"workdir={tmp_path}", "--set", "name=intr", "--set", "data.num_images=90"]
    assert main(["train", *differs, "--resume"]) == 2
    assert f"data.num_images: 96 -> 90. To continue it as it was trained: ae-jax train --resume {one_epoch_run}" in (
        capsys.readouterr().err
    )
    assert main(["train", "--resume", one_epoch_run, "--set", "train.epochs=2"]) == 0
    assert [json.loads(x)["epoch"] for x in open(os.path.join(one_epoch_run, "metrics.jsonl"))] == [1, 2]


def test_a_non_finite_loss_exits_1(tmp_path, capsys):
    """A run that failed is not a bad input (2): `ae-jax train` exits 1 naming the step."""
    diverging = ["--set", "train.optimizer=sgd", "--set", "train.learning_rate=1e30"]
    assert main(["train", "--config", "tiny", "--set", f"workdir={tmp_path}", *diverging]) == 1
    assert "non-finite loss" in capsys.readouterr().err


def test_bfloat16_compute_trains_with_float32_parameters(tmp_path):
    """model.dtype=bfloat16 (the GPU option) computes in bfloat16: the loss falls, the saved parameters stay float32."""
    config = tiny(tmp_path, "model.dtype=bfloat16", "train.epochs=3")
    result = train(config)
    lines = [json.loads(x) for x in open(os.path.join(config.run_dir, "metrics.jsonl"))]
    assert np.isfinite(result["train_loss"]) and lines[-1]["eval_loss"] < lines[0]["eval_loss"]
    assert {x.dtype for x in leaves(load_run(config.run_dir)[2])} == {np.dtype(np.float32)}


def test_cli_refuses_bad_keys_before_work(tmp_path, capsys):
    assert main(["train", "--config", "faces", "--set", "model.zdim=3", "--set", f"workdir={tmp_path}"]) == 2
    assert "model.zdim" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


EIGHT_DEVICES = """
import json, sys, jax, numpy as np
from ae_jax import config as C
from ae_jax.train.loop import train, load_run
assert jax.device_count() == 8, jax.devices()
config = C.load("tiny", json.loads(sys.argv[1]))
result = train(config)
params = [np.asarray(x).tolist() for x in jax.tree.leaves(load_run(config.run_dir)[2])]
print(json.dumps({"loss": result["train_loss"], "eval": result["eval_loss"], "params": params}))
"""


def test_eight_simulated_devices_match_one_device(tmp_path):
    overrides = [f"workdir={tmp_path}", "train.epochs=2"]
    outputs = {}
    for n in (1, 8):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        if n == 1:
            env["XLA_FLAGS"] = ""
            code = EIGHT_DEVICES.replace("== 8", "== 1")
        else:
            code = EIGHT_DEVICES
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(overrides + [f"name=dev{n}"])],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        outputs[n] = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(outputs[8]["loss"], outputs[1]["loss"], rtol=1e-4)
    np.testing.assert_allclose(outputs[8]["eval"], outputs[1]["eval"], rtol=1e-4)
    for a, b in zip(outputs[8]["params"], outputs[1]["params"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-4)


def test_batch_size_must_divide_by_the_device_count(tmp_path):
    code = (
        "from ae_jax import config as C; from ae_jax.train.loop import train; "
        f"train(C.load('tiny', {[f'workdir={tmp_path}', 'train.batch_size=12']!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
    )
    assert out.returncode != 0 and "train.batch_size=12 must be divisible by the number of devices (8)" in out.stderr


def test_same_seed_and_config_give_the_same_metrics_twice(tmp_path):
    runs = []
    for name in ("first", "second"):
        config = tiny(
            tmp_path,
            "train.epochs=2",
            "model.variational=true",
            "model.kl_weight=1e-3",
            "data.task=denoise",
            f"name={name}",
        )
        train(config)
        lines = [json.loads(x) for x in open(os.path.join(config.run_dir, "metrics.jsonl"))]
        runs.append([{k: v for k, v in x.items() if k not in ("images_per_s", "reconstruction_grid")} for x in lines])
    assert runs[0] == runs[1]


def test_metrics_go_to_jsonl_files_and_tensorboard_event_files(tmp_path):
    from tensorboardX.event_file_writer import event_pb2  # the same protobuf TensorBoard reads

    config = tiny(tmp_path, "train.epochs=2")
    train(config)
    epochs = [json.loads(x) for x in open(os.path.join(config.run_dir, "metrics.jsonl"))]
    steps = [json.loads(x) for x in open(os.path.join(config.run_dir, "steps.jsonl"))]
    assert [e["epoch"] for e in epochs] == [1, 2] and [s["step"] for s in steps] == list(range(1, 13))
    board = os.path.join(config.run_dir, "tensorboard")
    (events,) = [os.path.join(board, f) for f in os.listdir(board) if f.startswith("events.out.tfevents")]
    tags, images = {}, 0
    with open(events, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):  # TFRecord framing: length (8), its crc (4), the record, its crc (4)
        length = int.from_bytes(data[offset : offset + 8], "little")
        event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
        offset += 16 + length
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append((event.step, value.simple_value))
            images += value.HasField("image")
    assert [s for s, _ in tags["train/loss"]] == list(range(1, 13))
    assert tags["train/loss"][0][1] == pytest.approx(steps[0]["loss"])
    assert tags["epoch/eval_mse"][-1] == (epochs[-1]["step"], pytest.approx(epochs[-1]["eval_mse"]))
    assert images == 2


def test_profile_traces_the_steps_after_the_first_for_tensorboard_and_perfetto(tmp_path, capsys, log_messages):
    import glob
    import gzip

    args = ["train", "--config", "tiny", "--set", f"workdir={tmp_path}", "--set", "train.epochs=1", "--profile", "2"]
    assert main(args) == 0
    run = tmp_path / "tiny"
    assert f"profile of 2 training steps in {run / 'profile'}" in log_messages
    assert runs_config(run).train.profile_steps == 2
    (trace_dir,) = glob.glob(str(run / "profile" / "plugins" / "profile" / "*"))
    assert glob.glob(os.path.join(trace_dir, "*.xplane.pb"))  # TensorBoard's profile plugin reads these
    with gzip.open(os.path.join(trace_dir, "perfetto_trace.json.gz")) as f:
        events = json.load(f)["traceEvents"]
    assert sum(1 for e in events if e.get("name") == "PjitFunction(step_fn)") >= 2  # the jitted train steps
    assert main(["eval", str(run), "--evals", "reconstruction", "--profile"]) == 0
    assert f"profile: {run / 'eval' / 'profile'}" in capsys.readouterr().out
    assert glob.glob(str(run / "eval" / "profile" / "plugins" / "profile" / "*" / "*.xplane.pb"))


def runs_config(run_dir):
    from ae_jax.train import runs

    return runs.saved_config(str(run_dir))
