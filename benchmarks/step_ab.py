"""Interleaved A/B of ae_jax's train step (or encoder) between two checkouts: is a change faster on a drifting machine?

Each checkout runs in its own worker process (its own `ae_jax`, ae_jax.allocator's malloc settings, the same config,
batch and step function); once both have compiled and warmed up they take turns, A then B (B then A every other
round), `--steps` steps each, so the two times of a round are taken seconds apart. A shared machine's drift (20%
within minutes on the 2-vCPU hosts of benchmarks/README.md) then cancels in the per-round ratio B/A, whose median,
quartiles and win count are printed with each side's best and median ms/step:

    git worktree add /tmp/ae_jax_before HEAD~1
    python benchmarks/step_ab.py /tmp/ae_jax_before .             # A: the commit before, B: this tree
    python benchmarks/step_ab.py . . --rounds 20                  # A/A: the harness's own noise
    python benchmarks/step_ab.py /tmp/ae_jax_before . --part encode --batch 256   # the encoder forward instead
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

import steady  # benchmarks/ is on sys.path when run as a script

from ae_jax import allocator


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="checkout A (a folder holding ae_jax/), the reference")
    p.add_argument("b", help="checkout B, the change")
    p.add_argument("--config", default="case1", help="ae_jax preset or JSON config (default: case1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, both sides")
    p.add_argument("--part", choices=("train", "encode"), default="train", help="train step or encoder forward")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=40, help="A/B rounds (default 40)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per side per round (default 2)")
    steady.add_warmup_argument(p)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for side in ("a", "b"):
        if not os.path.isfile(os.path.join(getattr(args, side), "ae_jax", "__init__.py")):
            p.error(
                f"{side.upper()}: {getattr(args, side)!r} holds no ae_jax/__init__.py; give a checkout's root folder"
            )
    for key in ("batch", "rounds", "steps"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be >= 1")
    return args


def _import_ae_jax(root: str) -> None:
    """Import `ae_jax` from `root`, whatever an editable install maps the name to."""
    package = os.path.join(os.path.abspath(root), "ae_jax")
    spec = importlib.util.spec_from_file_location(
        "ae_jax", os.path.join(package, "__init__.py"), submodule_search_locations=[package]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["ae_jax"] = module
    spec.loader.exec_module(module)


def _worker(args: argparse.Namespace) -> None:
    """Compile and warm up, print 'ready', then for each line `k` on stdin make k calls and print their seconds."""
    _import_ae_jax(args.worker)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ae_jax import config as config_lib
    from ae_jax import sharding
    from ae_jax.train import loop

    config = config_lib.load(args.config, [*args.set, f"train.batch_size={args.batch}"])
    mesh = sharding.data_mesh()
    model, tx, state = loop.create_train_state(config, jax.random.key(config.seed))
    state = jax.device_put(state, sharding.replicated(mesh))
    images = np.random.default_rng(0).integers(0, 256, (args.batch, *loop.image_shape(config)), np.uint8)
    images = jax.device_put(images, sharding.batch_sharding(mesh))
    key = jax.random.key(1)
    if args.part == "train":
        step = loop.make_train_step(model, tx, config, mesh)

        def run():
            nonlocal state
            state, metrics = step(state, images, key)
            return metrics["loss"]
    else:
        encode = jax.jit(lambda params, x: model.apply({"params": params}, x / 255.0, method=model.encode))

        def run():
            return encode(state.params, images)

    steady.warm_up(run, jax.block_until_ready, args.warmup)
    print(f"ready {float(jnp.sum(run())):.6g}", flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        for _ in range(int(line)):
            out = run()
        jax.block_until_ready(out)
        print(time.perf_counter() - start, flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return _worker(args)
    env = allocator.tuned_env(dict(os.environ))
    common = ["--config", args.config, "--part", args.part, "--batch", str(args.batch), "--warmup", str(args.warmup)]
    common += [f"--set={s}" for s in args.set]
    workers = {}
    for side in ("a", "b"):
        root = getattr(args, side)
        cmd = [sys.executable, os.path.abspath(__file__), root, root, *common, "--worker", root]
        workers[side] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = workers[side].stdout.readline().split()
        if not ready or ready[0] != "ready":
            sys.exit(f"worker {side.upper()} ({root}) failed before its first step; its error is above")
        print(f"{side.upper()}: {os.path.abspath(root)} (output sum after warm-up: {ready[1]})")
    times = {"a": [], "b": []}
    for r in range(args.rounds):
        for side in ("a", "b") if r % 2 == 0 else ("b", "a"):
            workers[side].stdin.write(f"{args.steps}\n")
            workers[side].stdin.flush()
            times[side].append(float(workers[side].stdout.readline()) / args.steps * 1e3)
    for w in workers.values():
        w.stdin.close()
        w.wait()
    what = "train steps" if args.part == "train" else "encoder passes"
    print(f"{args.config}, batch {args.batch}: {args.rounds} rounds of {args.steps} {what} per side, alternating")
    for side in ("a", "b"):
        print(f"{side.upper()}: best {min(times[side]):6.1f}  median {statistics.median(times[side]):6.1f} ms per call")
    ratios = sorted(b / a for a, b in zip(times["a"], times["b"]))
    q1, q2, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    wins = sum(r < 1 for r in ratios)
    print(f"B/A per round: median {q2:.3f} (quartiles {q1:.3f}-{q3:.3f}); B faster in {wins} of {len(ratios)} rounds")


if __name__ == "__main__":
    main()
