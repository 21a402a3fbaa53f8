"""Where a train step's time goes: one row per XLA op, from a profiler trace of the real jitted step.

    python benchmarks/step_profile.py                      # case1, batch 64, 5 profiled steps
    python benchmarks/step_profile.py --set model.z_dim=128 --top 60

Prints the ops' time per step (summed over the threads that ran them), the union of the matmuls' intervals and of
the other ops' (so overlap is not double-counted), and per op its output shape, GFLOP and GFLOP/s (matmuls) and
the layer it came from. The process runs with ae_jax.allocator's malloc settings, as `ae-jax` does. The trace
records XLA's ops only (host tracer level 1, no Python tracer): the step then runs ~1% slower than unprofiled (both
printed), where the default tracers inflated it ~2x. Ops XLA runs asynchronously (Eigen dots) show only their launch.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import steady  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from ae_jax import allocator  # noqa: E402

NOT_OPS = ("ThunkExecutor", "$", "Slinky", "ThreadpoolListener", "end:", "Wait for", "PjitFunction", "Common", "Parse")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="case1")
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="timed, then profiled steps")
    steady.add_warmup_argument(p)
    p.add_argument("--top", type=int, default=40, help="rows to print, longest first")
    return p.parse_args(argv)


def _dot_flops(text: str, shapes: dict[str, list[int]]) -> int:
    """2 * output size * contracted size of every dot in some HLO text (instruction names are module-unique)."""
    flops = 0
    for out, lhs, contracting in re.findall(
        r"= \w+\[([\d,]*)\]\S* dot\(%([\w.\-]+), %[\w.\-]+\),.*?lhs_contracting_dims=\{([\d,]*)\}", text
    ):
        size = 1
        for v in filter(None, out.split(",")):
            size *= int(v)
        for d in contracting.split(","):
            size *= shapes[lhs][int(d)]
        flops += 2 * size
    return flops


def _hlo_ops(hlo: str) -> dict[str, tuple[str, int, str]]:
    """Entry ops of the optimised HLO: name -> (output shape, matmul FLOPs, the op_name it came from)."""
    computations = {m.group(1): m.group(2) for m in re.finditer(r"^%([\w.\-]+) .*?\{\n(.*?)\n\}", hlo, re.S | re.M)}
    shapes = {n: [int(v) for v in s.split(",") if v] for n, s in re.findall(r"%([\w.\-]+) = \w+\[([\d,]*)\]", hlo)}
    ops = {}
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
        if m:
            calls = re.search(r"calls=%([\w.\-]+)", line)
            source = re.search(r'op_name="([^"]*)"', line)
            flops = _dot_flops(computations.get(calls.group(1), "") if calls else line, shapes)
            ops[m.group(1)] = (m.group(2), flops, source.group(1) if source else "")
    return ops


def _union_ms(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -float("inf")
    for s, e in sorted(intervals):
        total += max(0.0, e - max(s, end))
        end = max(end, e)
    return total / 1e3


def main(argv=None) -> None:
    args = parse_args(argv)
    allocator.restart_tuned()
    import jax
    import numpy as np

    from ae_jax import config as config_lib
    from ae_jax import sharding
    from ae_jax.train import loop

    config = config_lib.load(args.config, [*args.set, f"train.batch_size={args.batch}"])
    mesh = sharding.data_mesh()
    model, tx, state = loop.create_train_state(config, jax.random.key(config.seed))
    state = jax.device_put(state, sharding.replicated(mesh))
    train_step = loop.make_train_step(model, tx, config, mesh)
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (args.batch, *loop.image_shape(config)), np.uint8)
    batch = jax.device_put(batch, sharding.batch_sharding(mesh))
    key = jax.random.key(1)
    ops = _hlo_ops(train_step.lower(state, batch, key).compile().as_text())

    def step():
        nonlocal state
        state, metrics = train_step(state, batch, key)
        return metrics

    def run_steps(steps: int) -> float:
        """ms per step over `steps` steps."""
        tic = time.perf_counter()
        for _ in range(steps):
            metrics = step()
        jax.block_until_ready(metrics)
        return (time.perf_counter() - tic) / steps * 1e3

    steady.warm_up(step, jax.block_until_ready, args.warmup)
    unprofiled = run_steps(args.steps)
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level, options.host_tracer_level = 0, 1
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, profiler_options=options):
            wall = run_steps(args.steps)
        (trace,) = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
        with gzip.open(trace) as f:
            events = [
                e for e in json.load(f)["traceEvents"] if e.get("ph") == "X" and not e["name"].startswith(NOT_OPS)
            ]

    per_op = collections.Counter()
    for e in events:
        per_op[e["name"]] += e["dur"] / 1e3 / args.steps
    is_dot = {name: ops.get(name, ("", 0, ""))[1] > 0 for name in per_op}
    dots = [(e["ts"], e["ts"] + e["dur"]) for e in events if is_dot[e["name"]]]
    others = [(e["ts"], e["ts"] + e["dur"]) for e in events if not is_dot[e["name"]]]
    dot_ms = sum(t for n, t in per_op.items() if is_dot[n])
    dot_flops = sum(ops[n][1] for n in per_op if is_dot[n])
    backend = f"jax {jax.__version__} ({jax.default_backend()})"
    print(f"{args.config}, batch {args.batch}, {backend}: {wall:.1f} ms/step profiled, {unprofiled:.1f} unprofiled")
    print(
        f"ops {sum(per_op.values()):.1f} ms summed over threads; matmuls {dot_ms:.1f} ms "
        f"({dot_flops / 1e9:.2f} GFLOP, {dot_flops / dot_ms / 1e6:.0f} GFLOP/s); union of intervals per step: "
        f"matmuls {_union_ms(dots) / args.steps:.1f} ms, other ops {_union_ms(others) / args.steps:.1f} ms"
    )
    print(f"{'ms':>6}  {'op':28} {'output':28} {'GFLOP':>6} {'GFLOP/s':>7}  from")
    for name, ms in per_op.most_common(args.top):
        shape, flops, source = ops.get(name, ("", 0, ""))
        rate = f"{flops / 1e9:6.2f} {flops / ms / 1e6:7.0f}" if flops else " " * 14
        print(f"{ms:6.2f}  {name[:28]:28} {shape[:28]:28} {rate}  {source.replace('jit(step_fn)/', '')[-60:]}")


if __name__ == "__main__":
    main()
