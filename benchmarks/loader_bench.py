"""Loader throughput: uint8 images/s from a memory-mapped cache to the device, per process, for ae_jax's
feeder (ae_jax.data.datasets.train_batches: a permuted fancy-index gather per batch, prefetched on a thread) and for
grain's DataLoader (IndexSampler sharded by JAX process, Batch), at several batch sizes.

    python benchmarks/loader_bench.py [--images 20000] [--size 96] [--batches 64,256,1024] [--workers 0,2]

Each figure is the best of --rounds passes over --steps batches, every batch placed on the device and waited
for. grain is optional (`pip install grain`); without it only the feeder is measured.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from ae_jax import sharding
from ae_jax.data import datasets


def make_cache(folder: str, n: int, size: int) -> np.ndarray:
    """A uint8 .npy of n random images, opened memory-mapped like ae_jax's decode cache."""
    path = os.path.join(folder, "images.npy")
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    rng = np.random.default_rng(0)
    for start in range(0, n, 1000):
        images[start : start + 1000] = rng.integers(0, 256, (min(1000, n - start), size, size, 3), np.uint8)
    images.flush()
    del images
    return np.load(path, mmap_mode="r")


def timed(batches, steps: int, batch_size: int) -> float:
    """Images/s over `steps` device batches after one warm-up batch."""
    iterator = iter(batches)
    jax.block_until_ready(next(iterator))
    start = time.perf_counter()
    for _ in range(steps):
        jax.block_until_ready(next(iterator))
    return steps * batch_size / (time.perf_counter() - start)


def feeder(images, batch_size: int, mesh):
    return datasets.train_batches(images, batch_size, seed=0, epoch=0, sharding=sharding.batch_sharding(mesh))


def grain_loader(images, batch_size: int, mesh, workers: int):
    import grain.python as gp
    from absl import flags

    flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags

    class Source(gp.RandomAccessDataSource):
        def __len__(self):
            return len(images)

        def __getitem__(self, index):
            return images[index]

    sampler = gp.IndexSampler(
        len(images), shard_options=gp.ShardByJaxProcess(drop_remainder=True), shuffle=True, num_epochs=1, seed=0
    )
    loader = gp.DataLoader(
        data_source=Source(),
        sampler=sampler,
        operations=[gp.Batch(batch_size // jax.process_count(), drop_remainder=True)],
        worker_count=workers,
    )
    place = sharding.batch_sharding(mesh)
    return (sharding.global_batch(batch, place, (batch_size,)) for batch in loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batches", default="64,256,1024")
    parser.add_argument("--workers", default="0,2", help="grain worker processes to try")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    mesh = sharding.data_mesh()
    try:
        import grain  # noqa: F401

        workers = [int(w) for w in args.workers.split(",")]
    except ImportError:
        workers = []
    print(f"{jax.device_count()} device(s) ({jax.devices()[0].platform}), {os.cpu_count()} CPUs, {args.size} px")
    with tempfile.TemporaryDirectory() as folder:
        images = make_cache(folder, args.images, args.size)
        print(f"{'loader':<28}" + "".join(f"{f'batch {b}':>14}" for b in map(int, args.batches.split(","))))
        loaders = [("ae_jax feeder", lambda b: feeder(images, b, mesh))]
        loaders += [(f"grain, {w} workers", lambda b, w=w: grain_loader(images, b, mesh, w)) for w in workers]
        for name, make in loaders:
            row = []
            for b in map(int, args.batches.split(",")):
                steps = min(args.steps, args.images // b - 2)
                row.append(max(timed(make(b), steps, b) for _ in range(args.rounds)))
            print(f"{name:<28}" + "".join(f"{r:>14,.0f}" for r in row), flush=True)


if __name__ == "__main__":
    main()
