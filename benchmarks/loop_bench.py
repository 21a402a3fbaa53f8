"""The full training loop against its bare step: does the feeder hold the device back? images/s of the bare
train step (a batch already on the device), and of `ae_jax.train.loop.train` with data.placement=host and =device.

    python benchmarks/loop_bench.py [--config faces] [--images 4096] [--epochs 2] [--steps 20] [--set key=value ...]

The loop's figure is its last epoch's images/s (timed from the epoch's second step: feeder, step records,
checkpoints within the epoch; not the held-out metrics after it). Run folders and the image cache go to a
temporary folder. The last line printed is every number as JSON (benchmarks/device_check.py reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types

import jax
import numpy as np

from ae_jax import config as config_lib
from ae_jax import sharding
from ae_jax.runtime import make_key
from ae_jax.train import loop


def tensorboardx_or_stand_in() -> str:
    """The training loop writes TensorBoard files through tensorboardX; where it is not installed (a bare GPU
    machine), a no-op SummaryWriter stands in, so the loop is timed without those event files. Says which."""
    try:
        import tensorboardX  # noqa: F401

        return "installed"
    except ImportError:

        class SummaryWriter:
            def __init__(self, *args, **kwargs):
                pass

            def __getattr__(self, name):
                return lambda *args, **kwargs: None

        sys.modules["tensorboardX"] = types.SimpleNamespace(SummaryWriter=SummaryWriter)
        return "missing: a no-op stand-in, no event files written"


def bare_step_images_per_s(config, steps: int) -> float:
    """images/s of the jitted train step alone on random uint8 batches placed once (two, alternated)."""
    mesh = sharding.data_mesh()
    model, tx, state = loop.create_train_state(config, make_key(config.seed))
    state = jax.device_put(state, sharding.replicated(mesh))
    step = loop.make_train_step(model, tx, config, mesh)
    shape = (config.train.batch_size, *loop.image_shape(config))
    rng = np.random.default_rng(0)
    pool = [jax.device_put(rng.integers(0, 256, shape, np.uint8), sharding.batch_sharding(mesh)) for _ in range(2)]
    key = make_key(1)
    for i in range(2):  # compiles, then warms
        state, metrics = step(state, pool[i], key)
    jax.block_until_ready(metrics)
    tic = time.perf_counter()
    for i in range(steps):
        state, metrics = step(state, pool[i % 2], key)
    jax.block_until_ready(metrics)
    return steps * config.train.batch_size / (time.perf_counter() - tic)


def loop_images_per_s(config, placement: str, scratch: str) -> float:
    """The last epoch's images/s of a fresh run with `placement`."""
    settings = [f"data.placement={placement}", f"name=loop-{placement}", f"workdir={os.path.join(scratch, 'runs')}"]
    return loop.train(config_lib.override(config, settings))["images_per_s"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="faces", help="preset or JSON file (data.name=faces unless --set)")
    p.add_argument("--images", type=int, default=4096, help="data.num_images: rendered faces trained on")
    p.add_argument("--epochs", type=int, default=2, help="the loop's figure is its last epoch's")
    p.add_argument("--steps", type=int, default=20, help="timed bare steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ae_jax_loop_bench_") as scratch:
        settings = [
            "data.name=faces",
            "data.dir=",
            f"data.num_images={args.images}",
            f"data.cache_dir={os.path.join(scratch, 'cache')}",
            f"train.epochs={args.epochs}",
            "train.checkpoint_every_steps=100000",
            *args.set,
        ]
        config = config_lib.load(args.config, settings)
        result = {
            "config": args.config,
            "settings": settings,
            "batch": config.train.batch_size,
            "image_size": config.data.image_size,
            "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
            "tensorboardx": tensorboardx_or_stand_in(),
            "bare_step": bare_step_images_per_s(config, args.steps),
        }
        for placement in ("host", "device"):
            result[f"{placement}_loop"] = loop_images_per_s(config, placement, scratch)
    print(f"{args.config} at {config.data.image_size} px, batch {config.train.batch_size}, {result['device']}")
    for name in ("bare_step", "host_loop", "device_loop"):
        ratio = result[name] / result["bare_step"]
        print(f"{name.replace('_', ' '):>12}: {result[name]:>10,.0f} images/s ({ratio:.2f}x the bare step)")
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
