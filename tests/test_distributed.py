"""Several processes, one job: two processes with 2 simulated CPU devices each (JAX's multi-controller runtime,
gloo collectives over 127.0.0.1) train, checkpoint, resume and encode like one process with 4 devices; the two
processes gather their batches from images held on their devices, the one process from the host."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import jax
import jax_jobs
import numpy as np
import pytest

from ae_jax import runtime, sharding

JOB = """
import json, sys
from ae_jax import runtime, sharding
sharding.initialize_distributed()
runtime.enable_compilation_cache()  # as the CLI does: the resumed run reuses the first run's programs
import jax, numpy as np
from ae_jax import config as C
from ae_jax.evaluators.encode import encode_run
from ae_jax.train.loop import load_run, train
overrides = json.loads(sys.argv[1])
assert jax.device_count() == 4, jax.devices()
first = train(C.load("tiny", overrides + ["train.epochs=1"]))
second = train(C.load("tiny", overrides + ["train.epochs=2"]), resume=True)
run_dir = C.load("tiny", overrides).run_dir
z_file = encode_run(run_dir, "valid")["valid"]
params = [np.asarray(x.addressable_data(0)).tolist() for x in jax.tree.leaves(load_run(run_dir)[2])]
if jax.process_index() == 0:
    losses = [first["train_loss"], second["train_loss"], second["eval_loss"]]
    print(json.dumps({"losses": losses, "params": params, "z": np.load(z_file).tolist()}))
"""


def _launch(workdir: str, processes: int, devices: int) -> list:
    """The processes of JOB; a job of several gathers batches on the devices, a single process from the host."""
    placement = "device" if processes > 1 else "host"
    overrides = [f"workdir={workdir}", "train.steps_per_epoch=3", "train.checkpoint_every_steps=2"]
    overrides.append(f"data.placement={placement}")
    return jax_jobs.start_job(JOB, [json.dumps(overrides)], processes, devices, os.path.join(workdir, "jit"))


def test_two_processes_train_resume_and_encode_like_one_process(tmp_path):
    procs = _launch(str(tmp_path / "two"), 2, 2) + _launch(str(tmp_path / "one"), 1, 4)
    two, other, one = [jax_jobs.result(p) for p in procs]
    assert other is None  # process 1 writes nothing and prints nothing
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(two["params"], one["params"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.array(two["z"]), np.array(one["z"]), rtol=1e-4, atol=1e-5)
    run = tmp_path / "two" / "tiny"
    assert sorted(os.listdir(run / "ckpt")) == ["3", "4", "6"]  # saved at 2, 3 (epoch end), 4, 6; three kept
    epochs = [json.loads(line)["epoch"] for line in open(run / "metrics.jsonl")]
    assert epochs == [1, 2]  # written once, by process 0
    assert len(open(run / "steps.jsonl").readlines()) == 6


def test_a_process_that_cannot_reach_the_coordinator_says_which_setting(tmp_path):
    env = {
        **os.environ,
        "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{jax_jobs.free_port()}",
        "JAX_NUM_PROCESSES": "2",
        "JAX_PROCESS_ID": "1",
        "AE_JAX_COORDINATOR_TIMEOUT": "2",
    }
    args = ["train", "--config", "tiny", "--set", f"workdir={tmp_path}"]
    code = f"import sys; from ae_jax.cli import main; sys.exit(main({args!r}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "process 1 of 2 could not reach the coordinator at JAX_COORDINATOR_ADDRESS=127.0.0.1:" in out.stderr
    assert "AE_JAX_COORDINATOR_TIMEOUT" in out.stderr and not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID is not"),
        ({"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "must be whole numbers"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "JAX_PROCESS_ID=2 must be in 0 .. JAX_NUM_PROCESSES-1 = 1"),
    ],
)
def test_launch_variables_are_checked(monkeypatch, variables, message):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(sharding.DistributedError, match=message):
        sharding.initialize_distributed()


def test_only_process_zero_logs(monkeypatch, capsys):
    runtime.configure_logging()
    runtime.configure_logging()  # once per process: a second call adds no second handler
    logger = logging.getLogger("ae_jax.data.datasets")
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    logger.info("from process 1")
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    logger.info("from process 0")
    assert capsys.readouterr().err == "from process 0\n"
