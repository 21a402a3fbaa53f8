"""Evaluators and studies across processes: two processes with 2 simulated CPU devices each run a smoke study and
`ae-jax eval --profile` (encode, reconstruction) on its trained run, and get the numbers one process with 4 devices
gets, every file written by process 0 alone, the trace included (process 1 changes nothing under the output folder:
an audit hook sees every file it opens for writing, renames, removes or creates)."""

from __future__ import annotations

import json
import os

import jax_jobs
import numpy as np

JOB = """
import json, os, sys
root = os.path.abspath(sys.argv[1])
changed = []

def audit(event, args):
    if event == "open":
        path = args[0] if isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) else None
    else:
        path = {"os.rename": args[1:2], "os.remove": args[:1], "os.mkdir": args[:1], "shutil.rmtree": args[:1]}
        path = (path.get(event) or [None])[0]
    path = os.path.relpath(os.path.abspath(path), root) if isinstance(path, str) else ".."
    if not path.startswith("..") and "/ckpt/" not in path:  # orbax coordinates the checkpoints' writes itself
        changed.append(path)

sys.addaudithook(audit)
import jax
from ae_jax.cli import main
assert main(["study", "random_points", "--out", root]) == 0
run = os.path.join(root, "runs", *os.listdir(os.path.join(root, "runs")))
assert main(["eval", run, "--out", os.path.join(root, "eval"), "--evals", "encode,reconstruction", "--profile"]) == 0
print(json.dumps({"process": jax.process_index(), "devices": jax.device_count(), "changed": sorted(set(changed))}))
"""


def _numbers(root: str) -> dict:
    """The study's measured numbers per model and evaluator, and the eval's result.json numbers, with the output
    folder's path taken out of them (the two jobs write to different folders), and without the z-points' digest
    (the two runs' parameters agree to 1e-4, not to the bit)."""
    study = json.load(open(os.path.join(root, "random_points-smoke", "results.json")))
    measured = {
        f"study {m['label']} {name}": result["numbers"]
        for m in study["models"]
        for name, result in m["evaluators"].items()
    }
    for folder in sorted(os.listdir(os.path.join(root, "eval"))):
        if os.path.isdir(os.path.join(root, "eval", folder)) and folder != "profile":
            numbers = json.load(open(os.path.join(root, "eval", folder, "result.json")))["numbers"]
            measured[f"eval {folder.rsplit('-', 1)[0]}"] = numbers
    measured["eval encode"].pop("sha256")
    return json.loads(json.dumps(measured).replace(root, "ROOT"))


def _assert_close(a, b, where: str = "") -> None:
    """Equal structure, strings and whole numbers; floats to 1e-4 (the training's sums in another order)."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=where)
    else:
        assert a == b, where


def test_two_processes_evaluate_and_study_like_one_process_and_write_once(tmp_path):
    two, one = str(tmp_path / "two"), str(tmp_path / "one")
    jit = os.environ["AE_JAX_JIT_CACHE"]  # the session's (conftest)
    procs = jax_jobs.start_job(JOB, [two], 2, 2, jit) + jax_jobs.start_job(JOB, [one], 1, 4, jit)
    main, other, single = [jax_jobs.result(p) for p in procs]
    assert [r["devices"] for r in (main, other, single)] == [4, 4, 4]
    assert other["process"] == 1 and other["changed"] == []  # process 1 wrote, renamed, removed or created nothing
    assert "random_points-smoke/results.json" in main["changed"] and "eval/index.html" in main["changed"]
    assert any(p.startswith("eval/profile/") and p.endswith("perfetto_trace.json.gz") for p in main["changed"])
    numbers = _numbers(two)
    assert {"study tiny reconstruction", "study tiny generators"} <= numbers.keys()
    assert {"eval encode", "eval reconstruction"} <= numbers.keys()
    _assert_close(numbers, _numbers(one))
