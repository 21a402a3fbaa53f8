"""Training: a jitted pure train step, per-epoch held-out metrics, atomic checkpoints, resume.

The step is deterministic from one seed: the data order is a function of (seed, epoch) and the step's
rng is `fold_in(key, step)`, so a run resumed from a checkpoint ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ae_jax import config as config_lib
from ae_jax import data, models, plots, sharding, stages
from ae_jax.checkpoint import CheckpointStore
from ae_jax.config import Config
from ae_jax.metrics import MetricWriter
from ae_jax.runtime import make_key

METRICS = ("loss", "recon", "kl", "mse", "psnr")
TRAINING_FORMAT = 1  # bump when the same config would train different parameters


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a run folder in the way); the message says why and what to do."""


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def image_shape(config: Config) -> tuple[int, int, int]:
    return (config.data.image_size, config.data.image_size, config.data.image_channels)


def make_optimizer(config: Config) -> optax.GradientTransformation:
    t = config.train
    return {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}[t.optimizer](t.learning_rate)


def init_state(model, tx: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Initial parameters and optimizer state, built in one jitted call (eager init compiles op by op)."""

    @jax.jit
    def init(key):
        params = models.init_params(model, key)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    return init(key)


def create_train_state(config: Config, key: jax.Array):
    """(model, optimizer, initial TrainState) for a validated config."""
    model = models.build_model(config.model, image_shape(config))
    tx = make_optimizer(config)
    return model, tx, init_state(model, tx, key)


def per_image_metrics(model, config: Config, params, batch: jax.Array, key: jax.Array, sample_z: bool):
    """Loss terms per image for a uint8 batch: the task's input goes in, the clean image is the target."""
    targets = batch.astype(jnp.float32) / 255.0
    input_key, z_key = jax.random.split(key)
    d, m = config.data, config.model
    inputs = data.make_inputs(input_key, targets, d.task, d.noise_std, d.drop_rate)
    out = model.apply({"params": params}, inputs, z_key if sample_z else None)
    recon = models.reconstruction_loss(out["logits"], targets, m.recon_loss)
    kl = models.kl_divergence(out["mean"], out["log_var"]) if m.variational else jnp.zeros_like(recon)
    mse = jnp.mean(jnp.square(jax.nn.sigmoid(out["logits"]) - targets).reshape(len(targets), -1), axis=-1)
    return {
        "loss": recon + m.kl_weight * kl,
        "recon": recon,
        "kl": kl,
        "mse": mse,
        "psnr": -10.0 * jnp.log10(jnp.maximum(mse, 1e-10)),
    }


def make_train_step(model, tx, config: Config, mesh) -> Callable:
    """Jitted (state, uint8 batch, key) -> (state, batch-mean metrics); donates the state."""

    def step_fn(state: TrainState, batch: jax.Array, key: jax.Array):
        step_key = jax.random.fold_in(key, state.step)

        def loss_fn(params):
            metrics = per_image_metrics(model, config, params, batch, step_key, sample_z=True)
            return jnp.mean(metrics["loss"]), metrics

        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, jax.tree.map(jnp.mean, metrics)

    repl = sharding.replicated(mesh)
    return jax.jit(
        step_fn, donate_argnums=0, in_shardings=(repl, sharding.batch_sharding(mesh), repl), out_shardings=(repl, repl)
    )


def make_eval_step(model, config: Config, mesh) -> Callable:
    """Jitted (params, uint8 batch, n_valid, key) -> metric sums over the first n_valid images (z = mean)."""

    def eval_fn(params, batch, n_valid, key):
        metrics = per_image_metrics(model, config, params, batch, key, sample_z=False)
        mask = jnp.arange(batch.shape[0]) < n_valid
        return {k: jnp.sum(jnp.where(mask, v, 0.0)) for k, v in metrics.items()}

    repl = sharding.replicated(mesh)
    return jax.jit(eval_fn, in_shardings=(repl, sharding.batch_sharding(mesh), repl, repl), out_shardings=repl)


def evaluate(eval_step, params, images: np.ndarray, batch_size: int, key: jax.Array, mesh) -> dict[str, float]:
    """Mean per-image metrics over `images` (deterministic: the task's input noise uses fixed keys)."""
    sums, count = None, 0
    for i, (batch, n_valid) in enumerate(data.ordered_batches(images, batch_size, sharding.batch_sharding(mesh))):
        out = eval_step(params, batch, n_valid, jax.random.fold_in(key, i))
        sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
        count += n_valid
    return {k: float(v) / count for k, v in jax.device_get(sums).items()}


def make_reconstruct_fn(model, config: Config) -> Callable:
    """Jitted (params, uint8 images, key) -> (targets, the task's inputs, reconstructions), floats in [0, 1]."""
    d = config.data

    @jax.jit
    def reconstruct(params, images, key):
        targets = images.astype(jnp.float32) / 255.0
        inputs = data.make_inputs(key, targets, d.task, d.noise_std, d.drop_rate)
        return targets, inputs, model.apply({"params": params}, inputs, method=lambda m, x: m.decode(m.encode(x)))

    return reconstruct


def reconstruction_grid(
    reconstruct_fn, config: Config, params, images: np.ndarray, key: jax.Array, path: str, title: str
) -> str:
    """Save originals, the task's inputs (if not plain reconstruction) and reconstructions as a PNG grid."""
    targets, inputs, recon = jax.device_get(reconstruct_fn(params, images, key))
    d = config.data
    rows, labels = [np.asarray(targets)], ["original"]
    if d.task != "reconstruct":
        rows, labels = rows + [np.asarray(inputs)], labels + [f"input ({d.task})"]
    return plots.image_rows_png(list(zip(labels + ["reconstruction"], rows + [np.asarray(recon)])), path, title)


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a checkpoint is written before exiting."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_finite(window: list[dict], first_step: int) -> list[dict]:
    """Bring a window of per-step metrics to the host; stop at the first non-finite loss, naming its step."""
    host = jax.device_get(window)
    for i, m in enumerate(host):
        if not np.isfinite(m["loss"]):
            raise TrainingError(
                f"non-finite loss ({m['loss']}) at step {first_step + i}; the last good checkpoint is kept. "
                "Likely causes: learning rate too high (try train.learning_rate smaller by 10x), "
                "inputs outside [0, 1], or model.recon_loss=bce with targets outside [0, 1]."
            )
    return host


def _flush(writer: MetricWriter, window: list[dict], first_step: int) -> list[float]:
    """Bring a window of step metrics to the host (checked finite), log them, return their losses."""
    host = _check_finite(window, first_step)
    writer.steps(first_step, host)
    return [m["loss"] for m in host]


NOT_TRAINING_KEYS = (
    "name",
    "workdir",
    "data.cache_dir",
    "train.checkpoint_every_steps",
    "train.keep_checkpoints",
    "train.prefetch",
    "train.eval_images",
    "train.grid_images",
)


# Settings added after runs were keyed enter the key only when set: a run keyed before they existed behaved as
# their default, so it keeps its key.
ADDED_LATER = {"data.channels": 0, "data.convert_mode": False, "model.init": "flax"}


def training_inputs(config: Config) -> dict:
    """Every setting the trained parameters depend on, flattened: seed, data, model and train sections, less
    where outputs go and how often checkpoints are kept; data.dir as an absolute path."""
    d = config_lib.to_dict(config)
    flat = stages.flatten({k: d[k] for k in ("seed", "data", "model", "train")})
    flat["data.dir"] = os.path.abspath(flat["data.dir"]) if flat["data.dir"] else ""
    return {
        k: v for k, v in flat.items() if k not in NOT_TRAINING_KEYS and not (k in ADDED_LATER and v == ADDED_LATER[k])
    }


def training_key(config: Config) -> str:
    """The hash of `training_inputs`: two configs with the same key train the same parameters."""
    return stages.digest({"format": TRAINING_FORMAT, **training_inputs(config)})


def _prepare_run_dir(config: Config, resume: bool) -> None:
    ckpt_dir, config_path = os.path.join(config.run_dir, "ckpt"), os.path.join(config.run_dir, "config.json")
    if not resume and os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
        raise TrainingError(
            f"{config.run_dir} already holds checkpoints; pass --resume to continue it, "
            "or choose another run name with --set name=..."
        )
    if resume and os.path.exists(config_path):
        saved = config_lib.from_dict(stages.read_json(config_path) or {})
        old, new = training_inputs(saved), training_inputs(config)
        changed = [k for k in stages.changed_keys(old, new) if not k.startswith("train.epochs:")]
        if changed:
            raise TrainingError(f"--resume with a config that differs from {config_path} in: {'; '.join(changed)}")
    os.makedirs(config.run_dir, exist_ok=True)
    config_lib.save(config, config_path)


def train(config: Config, resume: bool = False, log: Callable[[str], None] = print) -> dict:
    """Train per `config` into `config.run_dir`; returns the last epoch's metrics (and how the run ended)."""
    config_lib.validate(config)
    _prepare_run_dir(config, resume)
    t = config.train
    mesh = sharding.data_mesh()
    sharding.check_batch_size(t.batch_size, mesh)
    train_set = data.load_split(config.data, "train", config.seed)
    valid_set = data.load_split(config.data, "valid", config.seed)
    for ds in (train_set, valid_set):
        log(f"{ds.source}: {ds.found} images, {ds.skipped} skipped")
    if len(train_set.images) < t.batch_size:
        raise TrainingError(f"train.batch_size={t.batch_size} exceeds the {len(train_set.images)} training images")
    eval_images = valid_set.images[: t.eval_images or None]
    grid_images = np.asarray(valid_set.images[: t.grid_images])

    init_key, train_key, eval_key = jax.random.split(make_key(config.seed), 3)
    model, tx, state = create_train_state(config, init_key)
    state = jax.device_put(state, sharding.replicated(mesh))
    store = CheckpointStore(os.path.join(config.run_dir, "ckpt"), t.keep_checkpoints)
    start_step = 0
    if resume:
        restored = store.restore_latest(state, log)
        if restored is None:
            log(f"--resume: no readable checkpoint in {config.run_dir}; starting from step 0")
        else:
            state, start_step = restored
            log(f"resumed {config.run_dir} from step {start_step}")
    train_step = make_train_step(model, tx, config, mesh)
    eval_step = make_eval_step(model, config, mesh)
    reconstruct_fn = make_reconstruct_fn(model, config)
    batches_per_epoch = data.steps_per_epoch(len(train_set.images), t.batch_size)
    per_epoch = min(t.steps_per_epoch or batches_per_epoch, batches_per_epoch)
    writer = MetricWriter(config.run_dir)
    last: dict = {"status": "complete", "step": start_step}

    with _StopSignal() as stop:
        for epoch in range(start_step // per_epoch, t.epochs):
            first_batch = start_step % per_epoch if epoch == start_step // per_epoch else 0
            step = epoch * per_epoch + first_batch
            batches = data.train_batches(
                train_set.images,
                t.batch_size,
                config.seed,
                epoch,
                first_batch,
                sharding.batch_sharding(mesh),
                t.prefetch,
            )
            losses, window, window_start = [], [], step
            tic, timed_images = None, 0
            with tqdm(
                total=per_epoch,
                initial=first_batch,
                desc=f"epoch {epoch + 1}/{t.epochs}",
                unit="step",
                dynamic_ncols=True,
                leave=False,
            ) as bar:
                for batch in batches:
                    if step >= (epoch + 1) * per_epoch:
                        break
                    state, metrics = train_step(state, batch, train_key)
                    step += 1
                    window.append(metrics)
                    if tic is None:  # time from the second step on: the first one compiles
                        jax.block_until_ready(metrics)
                        tic = time.perf_counter()
                    else:
                        timed_images += t.batch_size
                    bar.update(1)
                    if len(window) == 20 or step % t.checkpoint_every_steps == 0 or stop.received:
                        losses += _flush(writer, window, window_start + 1)
                        window, window_start = [], step
                        rate = timed_images / max(time.perf_counter() - tic, 1e-9)
                        bar.set_postfix(loss=f"{losses[-1]:.4g}", img_s=f"{rate:.0f}")
                    if step % t.checkpoint_every_steps == 0 or stop.received:
                        store.save(step, state)
                    if stop.received:
                        break
            losses += _flush(writer, window, window_start + 1)
            elapsed = time.perf_counter() - tic if tic else 0.0
            if stop.received:
                store.save(step, state)
                store.wait()
                name = signal.Signals(stop.received).name
                log(f"{name} received: checkpoint saved at step {step} in {config.run_dir}; continue with --resume")
                writer.close()
                return {**last, "status": f"interrupted by {name}", "step": step}
            store.save(step, state)
            eval_metrics = evaluate(eval_step, state.params, eval_images, t.batch_size, eval_key, mesh)
            grid = reconstruction_grid(
                reconstruct_fn,
                config,
                state.params,
                grid_images,
                eval_key,
                os.path.join(config.run_dir, f"reconstructions_epoch{epoch + 1:03d}.png"),
                f"{config.name}: held-out images after epoch {epoch + 1}",
            )
            last = {
                "status": "complete",
                "epoch": epoch + 1,
                "step": step,
                "train_loss": float(np.mean(losses)) if losses else math.nan,
                "images_per_s": timed_images / elapsed if elapsed else math.nan,
                **{f"eval_{k}": v for k, v in eval_metrics.items()},
                "kl_share": (
                    config.model.kl_weight * eval_metrics["kl"] / eval_metrics["recon"]
                    if config.model.variational
                    else 0.0
                ),
                "reconstruction_grid": grid,
            }
            writer.epoch(last)
            log(
                f"epoch {epoch + 1}/{t.epochs} step {step}: train loss {last['train_loss']:.5g}, "
                f"held-out mse {eval_metrics['mse']:.5f}, psnr {eval_metrics['psnr']:.2f} dB, "
                f"{last['images_per_s']:.0f} images/s"
            )
    store.wait()
    store.close()
    writer.close()
    return last


def load_run(run_dir: str):
    """(config, model, params) of a run folder's latest readable checkpoint."""
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{run_dir} is not a run folder: {config_path} is missing")
    with open(config_path) as f:
        config = config_lib.from_dict(json.load(f))
    config_lib.validate(config)
    model = models.build_model(config.model, image_shape(config))
    abstract = jax.eval_shape(lambda: init_state(model, make_optimizer(config), make_key(0)))
    restored = CheckpointStore(os.path.join(run_dir, "ckpt")).restore_latest(abstract)
    if restored is None:
        raise FileNotFoundError(f"no readable checkpoint under {os.path.join(run_dir, 'ckpt')}")
    return config, model, restored[0].params
