"""Training: a jitted pure train step, per-epoch held-out metrics, atomic checkpoints, resume.

One loop trains one or several models (arms; a plain run is one): `_set_up` (run folders, data, states,
program), `_run_epoch` (steps, step records, checkpoints within the epoch), `_record_epoch` (held-out metrics,
grid, metrics.jsonl line), then the checkpoint that ends the epoch. The step is deterministic from one seed:
the data order is a function of (seed, epoch) and the step's rng is `fold_in(key, step)`, so a run resumed
from a checkpoint ends exactly where an uninterrupted one does. Who a run is (its key, its folder): runs.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ae_jax import config as config_lib
from ae_jax import sharding
from ae_jax.config import Config
from ae_jax.data import datasets
from ae_jax.model import models
from ae_jax.report import plots
from ae_jax.runtime import make_key
from ae_jax.train import arms, runs
from ae_jax.train.checkpoint import CheckpointStore
from ae_jax.train.metrics import MetricWriter
from ae_jax.train.runs import NonFiniteLoss, TrainingError

logger = logging.getLogger(__name__)

METRICS = ("loss", "recon", "kl", "mse", "psnr")


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def image_shape(config: Config) -> tuple[int, int, int]:
    return (config.data.image_size, config.data.image_size, config.data.image_channels)


OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """The optimizer at unit learning rate: the step multiplies its updates by train.learning_rate (each of
    these optimizers' updates is linear in the rate), so models with different rates can share one program."""
    return OPTIMIZERS[config.train.optimizer](1.0)


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


def task_inputs(config: Config, batch: jax.Array, key: jax.Array, sample_z: bool):
    """(targets, the task's inputs, a VAE's reparameterisation noise or None) for a uint8 batch and a step key."""
    targets = datasets.to_unit(batch)
    input_key, z_key = jax.random.split(key)
    d, m = config.data, config.model
    inputs = datasets.make_inputs(input_key, targets, d.task, d.noise_std, d.drop_rate)
    noise = jax.random.normal(z_key, (len(batch), m.z_dim)) if sample_z and m.variational else None
    return targets, inputs, noise


def loss_terms(model, config: Config, params, targets, inputs, noise, kl_weight) -> dict[str, jax.Array]:
    """Loss terms per image: the task's inputs go in, the clean targets come out (kl_weight may be traced)."""
    m = config.model
    out = model.apply({"params": params}, inputs, noise)
    recon = models.reconstruction_loss(out["logits"], targets, m.recon_loss)
    kl = models.kl_divergence(out["mean"], out["log_var"]) if m.variational else jnp.zeros_like(recon)
    mse = jnp.mean(jnp.square(jax.nn.sigmoid(out["logits"]) - targets).reshape(len(targets), -1), axis=-1)
    return {
        "loss": recon + kl_weight * kl,
        "recon": recon,
        "kl": kl,
        "mse": mse,
        "psnr": -10.0 * jnp.log10(jnp.maximum(mse, 1e-10)),
    }


def per_image_metrics(model, config: Config, params, batch: jax.Array, key: jax.Array, sample_z: bool):
    """Loss terms per image for a uint8 batch (`loss_terms` of `task_inputs`)."""
    targets, inputs, noise = task_inputs(config, batch, key, sample_z)
    return loss_terms(model, config, params, targets, inputs, noise, config.model.kl_weight)


def _update(model, tx, config: Config, state: TrainState, prepared, kl_weight, learning_rate):
    """One optimisation step on (targets, inputs, noise); kl_weight and learning_rate may be traced."""

    def loss_fn(params):
        metrics = loss_terms(model, config, params, *prepared, kl_weight)
        return jnp.mean(metrics["loss"]), metrics

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updates = jax.tree.map(lambda u: u * learning_rate, updates)
    params = optax.apply_updates(state.params, updates)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), jax.tree.map(jnp.mean, metrics)


def make_train_step(model, tx, config: Config, mesh) -> Callable:
    """Jitted (state, uint8 batch, key) -> (state, batch-mean metrics); donates the state."""

    def step_fn(state: TrainState, batch: jax.Array, key: jax.Array):
        prepared = task_inputs(config, batch, jax.random.fold_in(key, state.step), sample_z=True)
        return _update(model, tx, config, state, prepared, config.model.kl_weight, config.train.learning_rate)

    repl = sharding.replicated(mesh)
    return jax.jit(
        step_fn, donate_argnums=0, in_shardings=(repl, sharding.batch_sharding(mesh), repl), out_shardings=(repl, repl)
    )


def make_arms_train_step(model, tx, configs: Sequence[Config], groups: Sequence[int], mesh, program: str) -> Callable:
    """Jitted (stacked states, stacked uint8 batches (one per group), stacked keys) -> (states, metrics with an
    arm axis): the models of `configs` (arms that differ only in settings that keep the program's shapes; arm
    i reads group groups[i]'s batch) trained as one program. Each arm's task inputs and noise are drawn as its
    solo step draws them. `program` (train.arms_program, resolved by arms.program): vmap, one update vmapped over
    the stacked states (batched matmuls; grouped convolutions on GPUs); unroll, each arm's update in turn in
    one graph; map, lax.map over the arms, one arm's update (and inputs) live at a time."""
    kl_weights = jnp.asarray([c.model.kl_weight for c in configs], jnp.float32)
    learning_rates = jnp.asarray([c.train.learning_rate for c in configs], jnp.float32)
    preparers = [
        lambda batches, key, step, c=c, g=g: task_inputs(c, batches[g], jax.random.fold_in(key, step), sample_z=True)
        for c, g in zip(configs, groups)
    ]

    def one(state, prepared, kl_weight, learning_rate):
        return _update(model, tx, configs[0], state, prepared, kl_weight, learning_rate)

    def unrolled(states: TrainState, batches: jax.Array, keys: jax.Array):
        outs = []
        for i, (c, prepare) in enumerate(zip(configs, preparers)):
            state = _of_arm(states, i, True)
            prepared = prepare(batches, keys[i], state.step)
            outs.append(_update(model, tx, c, state, prepared, c.model.kl_weight, c.train.learning_rate))
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *outs)

    def vmapped(states: TrainState, batches: jax.Array, keys: jax.Array):
        prepared = [prepare(batches, keys[i], states.step[i]) for i, prepare in enumerate(preparers)]
        stacked = jax.tree.map(lambda *parts: jnp.stack(parts), *prepared)
        return jax.vmap(one)(states, stacked, kl_weights, learning_rates)

    def mapped(states: TrainState, batches: jax.Array, keys: jax.Array):
        def arm(args):
            i, state = args
            prepared = jax.lax.switch(i, preparers, batches, keys[i], state.step)
            return one(state, prepared, kl_weights[i], learning_rates[i])

        return jax.lax.map(arm, (jnp.arange(len(configs)), states))

    step_fn = {"vmap": vmapped, "unroll": unrolled, "map": mapped}[program]
    repl = sharding.replicated(mesh)
    batches = sharding.stacked(sharding.batch_sharding(mesh))
    return jax.jit(step_fn, donate_argnums=0, in_shardings=(repl, batches, repl), out_shardings=(repl, repl))


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
    for i, (batch, n_valid) in enumerate(datasets.ordered_batches(images, batch_size, sharding.batch_sharding(mesh))):
        out = eval_step(params, batch, n_valid, jax.random.fold_in(key, i))
        sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
        count += n_valid
    return {k: float(v) / count for k, v in jax.device_get(sums).items()}


def run_keys(config: Config) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A run's (initialisation, training, held-out) keys, all from its seed."""
    init, train, held_out = jax.random.split(make_key(config.seed), 3)
    return init, train, held_out


def make_held_out_metrics(model, config: Config, mesh) -> Callable[[Any, np.ndarray], dict[str, float]]:
    """(params, uint8 held-out images) -> their mean per-image metrics as `eval_<metric>`, and kl_share (the
    weighted KL term over the reconstruction term, 0 for a plain autoencoder): what each epoch records and the
    reconstruction evaluator reports, computed one way."""
    eval_step, key = make_eval_step(model, config, mesh), run_keys(config)[2]

    def held_out_metrics(params, images: np.ndarray) -> dict[str, float]:
        metrics = evaluate(eval_step, params, images, config.train.batch_size, key, mesh)
        kl_share = config.model.kl_weight * metrics["kl"] / metrics["recon"] if config.model.variational else 0.0
        return {**{f"eval_{k}": v for k, v in metrics.items()}, "kl_share": kl_share}

    return held_out_metrics


def make_reconstruct_fn(model, config: Config) -> Callable:
    """Jitted (params, uint8 images, key) -> (targets, the task's inputs, reconstructions), floats in [0, 1]."""
    d = config.data

    @jax.jit
    def reconstruct(params, images, key):
        targets = datasets.to_unit(images)
        inputs = datasets.make_inputs(key, targets, d.task, d.noise_std, d.drop_rate)
        return targets, inputs, model.apply({"params": params}, inputs, method=lambda m, x: m.decode(m.encode(x)))

    return reconstruct


def reconstruction_grid(reconstruct_fn, config: Config, params, images: np.ndarray, path: str, title: str) -> str:
    """Save originals, the task's inputs (if not plain reconstruction) and reconstructions as a PNG grid (the
    task's inputs drawn with the held-out key)."""
    targets, inputs, recon = jax.device_get(reconstruct_fn(params, images, run_keys(config)[2]))
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

    def requested(self, at_sync_point: bool) -> bool:
        """Whether to stop now: at once in a single process; in a multi-process job only at sync points, and
        then in every process when any one received the signal, so that all stop at the same step."""
        if jax.process_count() == 1:
            return self.received is not None
        return at_sync_point and sharding.any_process(self.received is not None)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Profile:
    """A jax.profiler trace of `steps` training steps after the first (which compiles) into `folder`
    (plugins/profile/<time>/: .xplane.pb for TensorBoard's profile plugin, perfetto_trace.json.gz for Perfetto);
    traced by process 0 only, and stopped early by the end of the epoch it started in."""

    def __init__(self, folder: str, steps: int):
        self.folder, self.left, self.traced, self.active = folder, steps if sharding.is_main() else 0, 0, False

    def after_step(self, state) -> None:
        if self.active:
            self.traced += 1
            if self.traced == self.left:
                self.stop(state)
        elif self.left and not self.traced:
            jax.block_until_ready(state)
            jax.profiler.start_trace(self.folder, create_perfetto_trace=True)
            self.active = True

    def stop(self, state) -> None:
        if self.active:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
            self.active = False
            logger.info(f"profile of {self.traced} training steps in {self.folder}")


def _of_arm(tree, i: int, stacked: bool):
    """Arm i's slice of a stacked pytree (states or metrics of models trained together); the tree if not stacked."""
    return jax.tree.map(lambda x: x[i], tree) if stacked else tree


def train(config: Config, resume: bool = False) -> dict:
    """Train per `config` into `config.run_dir`; returns the last epoch's metrics (and how the run ended)."""
    return train_together([config], resume)[0]


@dataclasses.dataclass
class _Training:
    """The models train_together trains (arms; a plain run is one) and what set-up built for them once."""

    configs: Sequence[Config]
    groups: list[int]  # arm i reads the batches of data group groups[i]: one group per seed
    seeds: list[int]
    train_sets: list[datasets.Dataset]
    valid_sets: list[datasets.Dataset]
    train_images: list  # each group's training images, on the host (memory-mapped) or on every device
    held_out_images: list  # each group's first train.eval_images held-out images, where its training images are
    mesh: Any
    state: TrainState  # the arms' states, stacked along a leading axis when there are several
    train_key: jax.Array
    train_step: Callable
    held_out_metrics: list[Callable]
    reconstruct_fns: list[Callable]
    stores: list[CheckpointStore]
    writers: list[MetricWriter]
    per_epoch: int
    start_step: int
    profile: _Profile

    @property
    def stacked(self) -> bool:
        return len(self.configs) > 1

    @property
    def settings(self):
        """The train section the arms share."""
        return self.configs[0].train


def _load_data(configs: Sequence[Config]) -> tuple[list[int], list[int], list, list]:
    """(seeds, each arm's data group, train sets, valid sets): one data group per seed (its order and its
    rendered faces), loaded once."""
    seeds = sorted({c.seed for c in configs})
    groups = [seeds.index(c.seed) for c in configs]
    leads = [configs[groups.index(g)] for g in range(len(seeds))]
    train_sets = [datasets.load_split(c.data, "train", c.seed) for c in leads]
    valid_sets = [datasets.load_split(c.data, "valid", c.seed) for c in leads]
    return seeds, groups, train_sets, valid_sets


def _place_data(config: Config, train_sets, valid_sets, mesh) -> tuple[list, list]:
    """Each group's training and held-out images (the first train.eval_images), left on the host or put on every
    device once, as data.placement decides."""
    train_images = [ds.images for ds in train_sets]
    held_out = [ds.images[: config.train.eval_images or None] for ds in valid_sets]
    needed = sum(images.nbytes for images in train_images + held_out)
    placement = datasets.choose_placement(config.data.placement, needed, mesh.local_devices)
    logger.info(f"data.placement={config.data.placement}: {needed:,} bytes of images gathered on the {placement}")
    if placement == "host":
        return train_images, held_out
    train_images, held_out = (
        [datasets.place_on_devices(images, mesh) for images in sets] for sets in (train_images, held_out)
    )
    return train_images, held_out


def _restore_together(stores: Sequence[CheckpointStore], states: list) -> tuple[list, int] | None:
    """Every run's state at the newest step that all of them saved and can read, or None."""
    common = set.intersection(*(set(store.steps()) for store in stores))
    for step in sorted(common, reverse=True):
        restored = [store.restore(step, state) for store, state in zip(stores, states)]
        if all(r is not None for r in restored):
            return restored, step
    return None


def _initial_states(configs: Sequence[Config], stores, resume: bool, mesh) -> tuple[Any, Any, list, int]:
    """(model, optimizer, each arm's state, the step they start from): initialised, or restored with --resume."""
    built = [create_train_state(c, run_keys(c)[0]) for c in configs]
    model, tx = built[0][0], built[0][1]  # arms share the program: only their initialisers may differ
    states = [jax.device_put(b[2], sharding.replicated(mesh)) for b in built]
    restored = _restore_together(stores, states) if resume else None
    runs_named = ", ".join(c.run_dir for c in configs)
    if resume and restored is None:
        logger.info(f"--resume: no readable checkpoint common to {runs_named}; from step 0")
    if restored is None:
        return model, tx, states, 0
    logger.info(f"resumed {runs_named} from step {restored[1]}")
    return model, tx, *restored


def _program(model, tx, configs: Sequence[Config], groups, states: list, mesh) -> tuple:
    """(train step, the arms' state, their training keys): one arm's own step, or the arms' states stacked
    under one step."""
    train_keys = [run_keys(c)[1] for c in configs]
    if len(configs) == 1:
        return make_train_step(model, tx, configs[0], mesh), states[0], train_keys[0]
    repl = sharding.replicated(mesh)
    state = jax.device_put(jax.tree.map(lambda *leaves: jnp.stack(leaves), *states), repl)
    program = arms.program(configs[0], jax.default_backend())
    logger.info(f"{len(configs)} arms in one program: train.arms_program={program}")
    step = make_arms_train_step(model, tx, configs, groups, mesh, program)
    return step, state, jax.device_put(jnp.stack(train_keys), repl)


def _set_up(configs: Sequence[Config], resume: bool) -> _Training:
    """Check the configs and run folders, load the data once, build or restore the arms' states and program."""
    for config in configs:
        config_lib.validate(config)
    if len(configs) > 1:
        arms.check_same_program(configs)
    for config in configs:
        datasets.check_source(config.data, config.train.batch_size)
    for config in configs:
        runs.prepare_run_dir(config, resume)
    t, mesh = configs[0].train, sharding.data_mesh()
    sharding.check_batch_size(t.batch_size, mesh)
    seeds, groups, train_sets, valid_sets = _load_data(configs)
    n_train = min(len(ds.images) for ds in train_sets)
    if n_train < t.batch_size:
        raise TrainingError(f"train.batch_size={t.batch_size} exceeds the {n_train} training images")
    train_images, held_out_images = _place_data(configs[0], train_sets, valid_sets, mesh)
    stores = [CheckpointStore(os.path.join(c.run_dir, "ckpt"), t.keep_checkpoints) for c in configs]
    model, tx, states, start_step = _initial_states(configs, stores, resume, mesh)
    train_step, state, train_key = _program(model, tx, configs, groups, states, mesh)
    batches_per_epoch = datasets.steps_per_epoch(n_train, t.batch_size)
    return _Training(
        configs,
        groups,
        seeds,
        train_sets,
        valid_sets,
        train_images,
        held_out_images,
        mesh,
        state,
        train_key,
        train_step,
        held_out_metrics=[make_held_out_metrics(model, c, mesh) for c in configs],
        reconstruct_fns=[make_reconstruct_fn(model, c) for c in configs],
        stores=stores,
        writers=[MetricWriter(c.run_dir, sharding.is_main(), start_step) for c in configs],
        per_epoch=min(t.steps_per_epoch or batches_per_epoch, batches_per_epoch),
        start_step=start_step,
        profile=_Profile(os.path.join(configs[0].run_dir, "profile"), t.profile_steps),
    )


def _flush(training: _Training, window: list[dict], first_step: int, losses: list[list[float]]) -> None:
    """Bring a window of step metrics to the host, stop at the first non-finite loss naming its run and step,
    log them and add them to each arm's losses."""
    host = jax.device_get(window)
    for i, writer in enumerate(training.writers):
        arm = [_of_arm(m, i, training.stacked) for m in host]
        for j, m in enumerate(arm):
            if not np.isfinite(m["loss"]):
                raise NonFiniteLoss(
                    f"{writer.run_dir}: non-finite loss ({m['loss']}) at step {first_step + j}; the last good "
                    "checkpoint is kept. Likely causes: learning rate too high (try train.learning_rate smaller "
                    "by 10x), inputs outside [0, 1], or model.recon_loss=bce with targets outside [0, 1]."
                )
        writer.steps(first_step, arm)
        losses[i] += [float(m["loss"]) for m in arm]


def _save(training: _Training, step: int) -> None:
    for i, store in enumerate(training.stores):
        store.save(step, _of_arm(training.state, i, training.stacked))


def _close(training: _Training) -> None:
    for store in training.stores:
        store.wait()
        store.close()
    for writer in training.writers:
        writer.close()


def _run_epoch(training: _Training, epoch: int, stop: _StopSignal) -> tuple[int, list[list[float]], float, bool]:
    """Train one epoch (the first from the step resumed at); returns the step reached, each arm's step losses,
    images per second and whether a stop signal ended it. Checkpoints every train.checkpoint_every_steps
    within the epoch; the one that ends it is left to the caller, after the epoch's record."""
    t, end = training.settings, (epoch + 1) * training.per_epoch
    first_batch = max(training.start_step - epoch * training.per_epoch, 0)
    step = window_start = epoch * training.per_epoch + first_batch
    groups = list(zip(training.train_images, training.seeds))
    batch_sharding = sharding.batch_sharding(training.mesh)
    batches = datasets.stacked_train_batches(
        groups, t.batch_size, epoch, first_batch, batch_sharding, t.prefetch, stacked=training.stacked
    )
    losses, window, tic, timed_images, stopping = [[] for _ in training.configs], [], None, 0, False
    with _progress_bar(training, epoch, first_batch) as bar:
        for batch in itertools.islice(batches, end - step):
            training.state, metrics = training.train_step(training.state, batch, training.train_key)
            step += 1
            window.append(metrics)
            training.profile.after_step(training.state)
            if tic is None:  # time from the second step on: the first one compiles
                jax.block_until_ready(metrics)
                tic = time.perf_counter()
            else:
                timed_images += t.batch_size
            bar.update(1)
            checkpoint_due = step % t.checkpoint_every_steps == 0
            stopping = stop.requested(len(window) == 20 or checkpoint_due)
            if len(window) == 20 or checkpoint_due or stopping:
                _flush(training, window, window_start + 1, losses)
                window, window_start = [], step
                rate = timed_images / max(time.perf_counter() - tic, 1e-9)
                bar.set_postfix(loss=f"{losses[0][-1]:.4g}", img_s=f"{rate:.0f}")
            if (checkpoint_due or stopping) and step < end:
                _save(training, step)
            if stopping:
                break
    training.profile.stop(training.state)
    _flush(training, window, window_start + 1, losses)
    elapsed = time.perf_counter() - tic if tic else 0.0
    return step, losses, timed_images / elapsed if elapsed else math.nan, stopping


def _progress_bar(training: _Training, epoch: int, first_batch: int) -> tqdm:
    arms_note = f" ({len(training.configs)} arms)" if training.stacked else ""
    return tqdm(
        total=training.per_epoch,
        initial=first_batch,
        desc=f"epoch {epoch + 1}/{training.settings.epochs}{arms_note}",
        unit="step",
        dynamic_ncols=True,
        leave=False,
        disable=not sharding.is_main(),
    )


def _record_epoch(training: _Training, i: int, epoch: int, step: int, losses: list[float], rate: float) -> dict:
    """Arm i's record of an epoch: held-out metrics, reconstruction grid, metrics.jsonl line and TensorBoard
    scalars (process 0 writes them); returns the line."""
    config, t = training.configs[i], training.settings
    params = _of_arm(training.state.params, i, training.stacked)
    held_out = training.held_out_metrics[i](params, training.held_out_images[training.groups[i]])
    valid = training.valid_sets[training.groups[i]].images
    grid = os.path.join(config.run_dir, f"reconstructions_epoch{epoch + 1:03d}.png")
    if sharding.is_main():  # on this process's devices, from a host copy of the (replicated) parameters
        title = f"{config.name}: held-out images after epoch {epoch + 1}"
        host = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), params)
        reconstruction_grid(training.reconstruct_fns[i], config, host, np.asarray(valid[: t.grid_images]), grid, title)
    record = {
        "status": "complete",
        "epoch": epoch + 1,
        "step": step,
        "train_loss": float(np.mean(losses)) if losses else math.nan,
        "images_per_s": rate,
        **held_out,
        "reconstruction_grid": grid,
    }
    training.writers[i].epoch(record)
    logger.info(
        f"{config.name + ': ' if training.stacked else ''}epoch {epoch + 1}/{t.epochs} step {step}: train loss "
        f"{record['train_loss']:.5g}, held-out mse {record['eval_mse']:.5f}, psnr {record['eval_psnr']:.2f} dB, "
        f"{rate:.0f} images/s"
    )
    return record


def _interrupted(training: _Training, stop: _StopSignal, step: int, lasts: list[dict]) -> list[dict]:
    """Each run's record of a stop by a signal: its name and number (exit_status), the step its checkpoint holds."""
    name = signal.Signals(stop.received).name if stop.received else "stop signal (another process)"
    run_dirs = " ".join(c.run_dir for c in training.configs)
    logger.info(f"{name} received: checkpoint saved at step {step}; continue with: ae-jax train --resume {run_dirs}")
    number = stop.received or signal.SIGTERM  # a stop agreed with the process that received it
    return [{**last, "status": f"interrupted by {name}", "step": step, "signal": int(number)} for last in lasts]


def exit_status(results: Sequence[dict]) -> int:
    """The exit status of a training process: 0 when every run completed, else 128 + the number of the signal that
    stopped it (130 SIGINT, 143 SIGTERM), as a shell reports a process that signal ended, so `train && eval` stops."""
    stopped = [r["signal"] for r in results if "signal" in r]
    return 128 + stopped[0] if stopped else 0


def train_together(configs: Sequence[Config], resume: bool = False) -> list[dict]:
    """Train each config into its run folder; several (arms: see ae_jax.train.arms) as one program over data loaded
    once (train.arms_program: see make_arms_train_step). Returns each run's last epoch's metrics (and how the run
    ended). In a multi-process job every process calls it; process 0 logs and writes metrics, grids and
    config.json. An epoch's record is written before the checkpoint that ends it, so a run killed anywhere and
    resumed records every epoch once (ae_jax.train.metrics drops the records past the checkpoint resumed from)."""
    if len(configs) > 1 and arms.program(configs[0], jax.default_backend()) == "separate":
        return _train_one_after_another(configs, resume)
    training = _set_up(configs, resume)
    lasts = [{"status": "complete", "step": training.start_step} for _ in configs]
    with _StopSignal() as stop:
        for epoch in range(training.start_step // training.per_epoch, training.settings.epochs):
            step, losses, rate, stopping = _run_epoch(training, epoch, stop)
            if step == (epoch + 1) * training.per_epoch:
                lasts = [_record_epoch(training, i, epoch, step, losses[i], rate) for i in range(len(configs))]
            _save(training, step)
            if stopping:
                _close(training)
                return _interrupted(training, stop, step, lasts)
    _close(training)
    return lasts


def _train_one_after_another(configs: Sequence[Config], resume: bool) -> list[dict]:
    """Arms as separate runs, one after another (train.arms_program=separate). Every arm's folder and config.json
    are written first, so after a stop `ae-jax train --resume` of them all continues each where it was."""
    arms.check_same_program(configs)
    for config in configs:
        runs.prepare_run_dir(config, resume)
    results: list[dict] = []
    for i, config in enumerate(configs):
        results += train_together([config], resume=resume)
        if "signal" in results[-1]:
            rest = " ".join(c.run_dir for c in configs[i:])
            left = len(configs) - i - 1
            resume_all = f"ae-jax train --resume {rest}"
            logger.info(f"{left} of {len(configs)} arms not started; they and this one continue with: {resume_all}")
            return results + [{"status": "not started", "step": 0, "signal": results[-1]["signal"]}] * left
    return results


def load_run(run_dir: str):
    """(config, model, params) of a run folder's latest readable checkpoint."""
    config = runs.load_run_config(run_dir)
    model = models.build_model(config.model, image_shape(config))
    shapes = jax.eval_shape(lambda: init_state(model, make_optimizer(config), make_key(0)))
    replicated = sharding.replicated(sharding.data_mesh())
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes)
    restored = CheckpointStore(os.path.join(run_dir, "ckpt")).restore_latest(abstract)
    if restored is None:
        raise FileNotFoundError(f"no readable checkpoint under {os.path.join(run_dir, 'ckpt')}")
    return config, model, restored[0].params
