"""Training throughput of ablation arms trained as one program (ae_jax.train.loop.make_arms_train_step, each
train.arms_program: vmap, unroll, map) against one model (make_train_step): images/s per arm and in total.

    python benchmarks/arms_bench.py [--config faces] [--arms 1,2,4,8] [--steps 10] [--programs vmap,unroll,map]
                                    [--set key=value ...]

Arms differ in the learning rate (the same program either way); batches are placed on the device once. On a
CPU the total stays at best flat (the cores are busy with one model); an accelerator is where arms pay. The
last line printed is every row as JSON (benchmarks/device_check.py reads it).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import config as config_lib
from ae_jax import sharding
from ae_jax.runtime import make_key
from ae_jax.train import arms, loop


def images_per_s(step, state, batch, key, batch_size: int, steps: int) -> float:
    state, metrics = step(state, batch, key)  # compiles
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="faces")
    parser.add_argument("--arms", default="1,2,4,8")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--programs", default="vmap,unroll,map", help="train.arms_program values to time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    base = config_lib.load(args.config, args.set)
    mesh = sharding.data_mesh()
    repl = sharding.replicated(mesh)
    b = base.train.batch_size
    shape = (b, base.data.image_size, base.data.image_size, base.data.image_channels)
    print(f"{args.config}: batch {b}, {shape[1]} px, {jax.device_count()} {jax.devices()[0].platform} device(s)")
    print(f"{'arms':>5}{'program':>10}{'images/s per arm':>18}{'images/s total':>16}")
    rows = []
    for n in map(int, args.arms.split(",")):
        rates = ",".join(f"{base.train.learning_rate * (1 + i / 10):g}" for i in range(n))
        configs = arms.arm_configs(base, [f"train.learning_rate={rates}"]) if n > 1 else [base]
        built = [loop.create_train_state(c, make_key(c.seed)) for c in configs]
        model, tx = built[0][0], built[0][1]
        batch = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
        if n == 1:
            step, state = loop.make_train_step(model, tx, base, mesh), jax.device_put(built[0][2], repl)
            placed = jax.device_put(batch, sharding.batch_sharding(mesh))
            per_arm = images_per_s(step, state, placed, make_key(1), b, args.steps)
            print(f"{n:>5}{'one model':>10}{per_arm:>18,.0f}{per_arm:>16,.0f}", flush=True)
            rows.append({"arms": 1, "program": "one model", "images_per_s_total": per_arm})
            continue
        key = jax.device_put(jnp.stack([make_key(i) for i in range(n)]), repl)
        batch = jax.device_put(batch[None], sharding.stacked(sharding.batch_sharding(mesh)))
        for program in args.programs.split(","):
            step = loop.make_arms_train_step(model, tx, configs, [0] * n, mesh, program)
            state = jax.device_put(jax.tree.map(lambda *x: jnp.stack(x), *[s for _, _, s in built]), repl)
            per_arm = images_per_s(step, state, batch, key, b, args.steps)
            print(f"{n:>5}{program:>10}{per_arm:>18,.0f}{per_arm * n:>16,.0f}", flush=True)
            rows.append({"arms": n, "program": program, "images_per_s_total": per_arm * n})
    print(json.dumps({"config": args.config, "batch": b, "backend": jax.default_backend(), "rows": rows}))


if __name__ == "__main__":
    main()
