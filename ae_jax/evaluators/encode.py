"""Encode a whole split into z-points, streamed batch by batch into a memory-mappable float32 .npy.

Images are read from the uint8 cache (memory-mapped) and z-points written to an `open_memmap`
file, so 200,000 x 256 never needs images and latents in memory at once. A VAE stores its means; its posterior
log-variances are encoded the same way, on request, into a file beside them (`log_variances`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

import jax
import numpy as np
from tqdm.auto import tqdm

from ae_jax import sharding, stages
from ae_jax.data import datasets
from ae_jax.evaluators import registry
from ae_jax.numerics import stats

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def z_path(run_dir: str, split: str = "train") -> str:
    """Where `encode_run` writes a run's z-points of one split."""
    return os.path.join(run_dir, f"z_{split}.npy")


# What an encoding writes of each image: its z-point (a VAE's posterior mean), or a VAE's posterior log-variance.
STATISTICS = {"mean": lambda m, x: m.encode(x), "log_var": lambda m, x: m.encoder(x)[1]}


def make_encode_fn(model, params, mesh, statistic: str = "mean") -> Callable:
    """Jitted uint8 batch -> z-points (STATISTICS[statistic]), batch sharded over the mesh; the z-points come back
    whole in every process."""
    replicated = sharding.replicated(mesh)
    params = jax.device_put(params, replicated)

    def encode(params, batch):
        return model.apply({"params": params}, datasets.to_unit(batch), method=STATISTICS[statistic])

    encode = jax.jit(encode, in_shardings=(replicated, sharding.batch_sharding(mesh)), out_shardings=replicated)
    return lambda batch: encode(params, batch)


def encode_images(
    encode_fn, images: np.ndarray, out_path: str, z_dim: int, batch_size: int, mesh, desc: str = "encode"
) -> None:
    """Write z-points of `images` to `out_path` (.npy, written to a temp name then renamed). Every process
    encodes its rows of each batch; the main process writes the one file."""
    main = sharding.is_main()
    tmp_path = out_path + ".partial.npy"
    if main:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    z = np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.float32, shape=(len(images), z_dim)) if main else None
    done = 0
    with tqdm(total=len(images), desc=desc, unit="img", dynamic_ncols=True, disable=not main) as bar:
        for batch, n_valid in datasets.ordered_batches(images, batch_size, sharding.batch_sharding(mesh)):
            points = encode_fn(batch)
            if main:
                z[done : done + n_valid] = np.asarray(points.addressable_data(0))[:n_valid]
            done += n_valid
            bar.update(n_valid)
    if main:
        z.flush()
        del z
        os.replace(tmp_path, out_path)


ENCODE_FORMAT = 1


def load_z(path: str) -> np.ndarray:
    """Memory-mapped z-points (N, D) from a .npy file, refused unless 2-D, float and finite."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"z-points file {path!r} does not exist")
    try:
        z = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a .npy array of numbers ({e})") from None
    if not isinstance(z, np.ndarray):
        raise ValueError(f"{path}: expected one .npy array, got an .npz archive")
    if not np.issubdtype(z.dtype, np.floating):
        raise ValueError(f"{path}: z-points must be floating point, got dtype {z.dtype}")
    stats.as_points(z, name=path)
    return z


def encode_inputs(config, params, split: str) -> dict:
    """What a split's z-points depend on: the parameters' digest, the model and data settings, the split."""
    from ae_jax.train.runs import training_inputs_of

    data_inputs = training_inputs_of(config, "data", "model", "seed")
    leaves = jax.tree.leaves(jax.device_get(params))
    return {"format": ENCODE_FORMAT, "params": stages.arrays_digest(leaves), "split": split, **data_inputs}


def record_path(z_file: str) -> str:
    """The stage record written beside a z-points file."""
    return os.path.splitext(z_file)[0] + ".json"


def _whole_batches(mesh, batch_size: int) -> int:
    """batch_size rounded down to a whole number of rows per device (at least one)."""
    return max(mesh.devices.size, batch_size // mesh.devices.size * mesh.devices.size)


def encode_run(
    run_dir: str, split: str = "train", out: str | None = None, batch_size: int = 256, run=None
) -> dict[str, str]:
    """Encode a split ("train", "valid", "test" or "all") of a trained run (its (config, model, params) as
    `run` if loaded, whose data section may name another dataset); returns the written paths, each with its
    stage record beside it: the data settings in its inputs, the source, counts and content key of the images."""
    from ae_jax.train.loop import load_run

    if split not in SPLITS + ("all",):
        raise ValueError(f"--split {split!r} is not one of {', '.join(SPLITS + ('all',))}")
    config, model, params = run or load_run(run_dir)
    mesh = sharding.data_mesh()
    batch_size = _whole_batches(mesh, batch_size)
    encode_fn = make_encode_fn(model, params, mesh)
    written = {}
    for name in SPLITS if split == "all" else (split,):
        ds = datasets.load_split(config.data, name, config.seed)
        path = out if (out and split != "all") else z_path(run_dir, name)
        encode_images(encode_fn, ds.images, path, config.model.z_dim, batch_size, mesh, desc=f"encode {name}")
        written[name] = path
        if not sharding.is_main():
            continue
        side = os.path.splitext(path)[0]
        np.save(side + "_ids.npy", np.asarray(ds.ids))
        if ds.labels is not None:
            np.save(side + "_labels.npy", np.asarray(ds.labels))
            with open(side + "_label_names.json", "w") as f:
                json.dump(list(ds.label_names), f)
        else:  # labels left by an earlier encoding to the same name would describe other images
            for stale in (side + "_labels.npy", side + "_label_names.json"):
                if os.path.exists(stale):
                    os.remove(stale)
        stages.record(
            record_path(path),
            encode_inputs(config, params, name),
            n_points=len(ds.images),
            data=dict(source=ds.source, found=ds.found, skipped=ds.skipped, key=ds.key),
        )
        logger.info(f"wrote {path} ({len(ds.images)} x {config.model.z_dim})")
    sharding.barrier("z-points written")  # no process reads them before the main one has written them
    return written


def ensure_encoded(run_dir: str, split: str, run) -> str:
    """The path of the run's z-points of `split`, encoded again unless their record matches the parameters."""
    path = z_path(run_dir, split)
    config, _, params = run
    reused = stages.reusable(f"z-points {path}", record_path(path), encode_inputs(config, params, split))
    if not (reused and os.path.isfile(path)):  # process 0 decided (stages.reusable): all encode, or none
        encode_run(run_dir, split, run=run)
    return path


# ---------------------------------------------------------------------------------------------
# The z-points an evaluation reads, and the encode evaluator.


def points_file(ctx: registry.RunContext) -> str:
    """The z-points file: ctx.z_file, or the run's split (config eval.split), encoded if its record is stale."""
    if ctx.z_file:
        return ctx.z_file
    return ctx.memo("z_path", lambda: ensure_encoded(ctx.run_dir, ctx.config.eval.split, ctx.run()))


def points(ctx: registry.RunContext) -> np.ndarray:
    """The z-points (N, D) every evaluator of the context reads, loaded once."""
    return ctx.memo("z", lambda: load_z(points_file(ctx)))


def points_digest(ctx: registry.RunContext) -> str:
    return ctx.memo("z_digest", lambda: stages.file_digest(points_file(ctx)))


def log_var_path(z_file: str) -> str:
    """Where a VAE's posterior log-variances of the z-points in z_file are written, row for row."""
    return os.path.splitext(z_file)[0] + "_log_var.npy"


def ensure_log_variances(run_dir: str, split: str, run, batch_size: int = 256) -> str:
    """The path of a VAE run's posterior log-variances of `split`, encoded again unless their record matches the
    parameters (the z-points' inputs and the statistic)."""
    config, model, params = run
    if not config.model.variational:
        raise ValueError(f"{run_dir}: a plain autoencoder has no posterior log-variances")
    path = log_var_path(z_path(run_dir, split))
    inputs = {**encode_inputs(config, params, split), "statistic": "log_var"}
    if stages.reusable(f"log-variances {path}", record_path(path), inputs) and os.path.isfile(path):
        return path
    mesh = sharding.data_mesh()
    images = datasets.load_split(config.data, split, config.seed).images
    encode_fn = make_encode_fn(model, params, mesh, "log_var")
    batch = _whole_batches(mesh, batch_size)
    encode_images(encode_fn, images, path, config.model.z_dim, batch, mesh, desc=f"encode {split} log-variances")
    if sharding.is_main():
        stages.record(record_path(path), inputs, n_points=len(images))
    sharding.barrier("log-variances written")
    return path


def log_variances_file(ctx: registry.RunContext) -> str:
    """The file of a VAE run's posterior log-variances of its split (config eval.split), encoded if stale."""
    if ctx.z_file:
        raise ValueError("posterior log-variances come from the run's own encoded split, not a z-points file (--z)")
    return ctx.memo("log_var_path", lambda: ensure_log_variances(ctx.run_dir, ctx.config.eval.split, ctx.run()))


def log_variances(ctx: registry.RunContext) -> np.ndarray:
    """A VAE's posterior log-variances (N, D), row for row with `points`, loaded once."""
    return ctx.memo("log_var", lambda: load_z(log_variances_file(ctx)))


def log_variances_digest(ctx: registry.RunContext) -> str:
    return ctx.memo("log_var_digest", lambda: stages.file_digest(log_variances_file(ctx)))


def point_ids(ctx: registry.RunContext):
    """The ids (file names) of the z-points' images, when written beside them."""
    path = os.path.splitext(points_file(ctx))[0] + "_ids.npy"
    return np.load(path) if os.path.isfile(path) else None


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """The z-points of the split (encoded once per parameters): where they are, how many, their digest."""
    z = points(ctx)
    numbers = {"path": points_file(ctx), "n_points": int(z.shape[0]), "z_dim": int(z.shape[1])}
    return {**numbers, "sha256": points_digest(ctx)}, {}


def view(result: registry.Result, label: str, ks) -> registry.View:
    """How many z-points of what dimension, and where they are."""
    n = result.numbers
    row = {"z-points": n["n_points"], "z_dim": n["z_dim"], "file": n["path"], "sha256": n["sha256"][:12]}
    return registry.View(
        headline={"z-points": n["n_points"], "z_dim": n["z_dim"]},
        rows=[row],
        findings=[f"{label}: {n['n_points']:,} z-points of {n['z_dim']} components."],
    )


registry.register(
    registry.Evaluator(
        "encode",
        measure,
        view,
        lambda c: {"z": points_digest(c), "split": c.config.eval.split},
        title="z-points",
        per_run=True,
    )
)
