"""A judge of generated images with no downloaded weights: a small conv net trained in-project on the
dataset's own labels (embedded faces: their factors; CelebA: the 40 attributes; MNIST/CIFAR: classes).

Its penultimate layer is the feature space in which decoded samples are compared with real held-out
images: Frechet distance (as FID, but with this in-project network) and k-NN precision/recall.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ae_jax import config as config_lib
from ae_jax import sharding, stages
from ae_jax.config import Config
from ae_jax.data import datasets
from ae_jax.numerics import stats
from ae_jax.runtime import make_key
from ae_jax.train.checkpoint import CheckpointStore

logger = logging.getLogger(__name__)

FLIP_INVARIANT = ("celeba", "cifar10")  # datasets whose labels survive a left-right mirror (augment "auto")


class JudgeNet(nn.Module):
    """Conv stack -> flattened (positions kept) or mean-pooled maps -> Dense features -> task head."""

    n_outputs: int
    filters: tuple[int, ...]
    convs_per_stage: int  # a stride-2 convolution, then convs_per_stage - 1 stride-1 ones
    pool: str  # flatten | mean
    features: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        for f in self.filters:
            x = nn.leaky_relu(nn.Conv(f, (3, 3), (2, 2))(x))
            for _ in range(self.convs_per_stage - 1):
                x = nn.leaky_relu(nn.Conv(f, (3, 3))(x))
        pooled = x.reshape(x.shape[0], -1) if self.pool == "flatten" else x.mean(axis=(1, 2))
        features = nn.leaky_relu(nn.Dense(self.features)(pooled))
        return features, nn.Dense(self.n_outputs)(features)


def _net(n_outputs: int, j) -> JudgeNet:
    """The judge network of a JudgeConfig (or of judge.json's copy of it)."""
    return JudgeNet(n_outputs, tuple(j["filters"]), j["convs_per_stage"], j["pool"], j["features"])


def label_task(labels: np.ndarray | None, source: str) -> tuple[str, int]:
    """('regression' | 'multilabel' | 'classes', number of outputs) inferred from a dataset's labels."""
    if labels is None:
        raise ValueError(f"{source} has no labels to train a judge on (use faces, celeba, mnist or cifar10)")
    if np.issubdtype(labels.dtype, np.floating):
        return "regression", labels.shape[1]
    if labels.ndim == 2:
        return "multilabel", labels.shape[1]
    return "classes", int(labels.max()) + 1


def _loss(task: str, outputs: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
    if task == "regression":
        return jnp.mean(jnp.square(outputs - targets))
    if task == "multilabel":
        return jnp.mean(optax.sigmoid_binary_cross_entropy(outputs, (targets > 0).astype(jnp.float32)))
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, targets))


def _score(task: str, outputs: np.ndarray, targets: np.ndarray) -> tuple[str, float]:
    """Held-out quality: R^2 for factors, accuracy for attributes and classes."""
    if task == "regression":
        return "r2", float(1 - np.mean((outputs - targets) ** 2) / np.mean((targets - targets.mean(0)) ** 2))
    if task == "multilabel":
        return "accuracy", float(np.mean((outputs > 0) == (targets > 0)))
    return "accuracy", float(np.mean(outputs.argmax(-1) == targets))


def _baseline_outputs(task: str, train_labels: np.ndarray, n: int) -> np.ndarray:
    """The trivial judge's outputs for n images: the training mean (factors), each attribute's majority value
    (attributes) or the most frequent class."""
    labels = np.asarray(train_labels)
    if task == "regression":
        return np.broadcast_to(labels.mean(0), (n, labels.shape[1]))
    if task == "multilabel":
        return np.broadcast_to(np.where((labels > 0).mean(0) >= 0.5, 1.0, -1.0), (n, labels.shape[1]))
    return np.broadcast_to(np.eye(int(labels.max()) + 1)[np.bincount(labels).argmax()], (n, int(labels.max()) + 1))


def augmentation(augment: str, dataset: str) -> str:
    """The augmentation train_judge applies: 'flip' (random left-right mirror) or 'none'; 'auto' flips only the
    datasets whose labels a mirror keeps (CelebA's attributes, CIFAR's classes; not the faces' head_x)."""
    if augment != "auto":
        return augment
    return "flip" if dataset in FLIP_INVARIANT else "none"


def _make_step(net, tx, task: str, augment: str) -> Callable:
    """Jitted (params, opt_state, uint8 images, labels, key) -> (params, opt_state, loss): one step on a batch,
    mirrored at random when `augment` is 'flip'."""

    @jax.jit
    def step(params, opt_state, images, targets, key):
        images = datasets.to_unit(images)
        if augment == "flip":
            mirror = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
            images = jnp.where(mirror, images[:, :, ::-1], images)

        def loss_fn(p):
            return _loss(task, net.apply({"params": p}, images)[1], targets)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _fit(config: Config, net, task: str, train_set, held_out: Callable, curve: bool) -> tuple[dict, list[float]]:
    """(trained params, the held-out score after each epoch if `curve`): judge.epochs epochs of Adam(W) with a
    cosine schedule to 0, over the data order training uses."""
    j = config.judge
    n_steps = datasets.steps_per_epoch(len(train_set.images), j.batch_size)
    schedule = optax.cosine_decay_schedule(j.learning_rate, j.epochs * n_steps)  # anneals to 0 at the end
    tx = optax.adamw(schedule, weight_decay=j.weight_decay) if j.weight_decay else optax.adam(schedule)
    params = jax.jit(net.init)(make_key(config.seed), jnp.zeros((1, *train_set.images.shape[1:])))["params"]
    opt_state, labels = tx.init(params), jnp.asarray(train_set.labels)
    step = _make_step(net, tx, task, augmentation(j.augment, config.data.name))
    key, valid_curve = jax.random.fold_in(make_key(config.seed), 1), []
    for epoch in range(j.epochs):
        order = datasets.epoch_permutation(len(train_set.images), config.seed, epoch)
        with tqdm(total=n_steps, desc=f"judge epoch {epoch + 1}/{j.epochs}", leave=False) as bar:
            for i, images in enumerate(datasets.train_batches(train_set.images, j.batch_size, config.seed, epoch)):
                idx = order[i * j.batch_size : (i + 1) * j.batch_size]
                step_key = jax.random.fold_in(key, epoch * n_steps + i)
                params, opt_state, _ = step(params, opt_state, images, labels[idx], step_key)
                bar.update(1)
        if curve:
            valid_curve.append(round(held_out(params)[1], 4))
    return params, valid_curve


def train_judge(config: Config, out_dir: str, curve: bool = False) -> dict:
    """Train the judge on the config's dataset under config.judge; writes `judge.json` and the params under
    `out_dir`. `curve` also records the held-out score after every epoch (`valid_curve_<metric>`; a pass each).

    The judge does not train through ae_jax.train.loop: it is a supervised regressor (or classifier) of the
    dataset's labels with its own loss, learning-rate schedule and augmentation, trained in one go without
    checkpoints, resume, arms or per-epoch records; its loop (`_fit`) is shorter than the hooks the autoencoder
    loop would need to host it."""
    j = config.judge
    train_set = datasets.load_split(config.data, "train", config.seed)
    valid_set = datasets.load_split(config.data, "valid", config.seed)
    task, n_outputs = label_task(train_set.labels, train_set.source)
    net = _net(n_outputs, config_lib.to_dict(config)["judge"])
    targets = np.asarray(valid_set.labels)

    def held_out(params):
        outputs = np.concatenate([np.asarray(o) for o in _apply_batches(net, params, valid_set.images, head=True)])
        return _score(task, outputs, targets)

    params, valid_curve = _fit(config, net, task, train_set, held_out, curve)
    metric, value = held_out(params)
    _, baseline = _score(task, _baseline_outputs(task, train_set.labels, len(targets)), targets)
    info = {
        "task": task,
        "n_outputs": n_outputs,
        "image_shape": list(train_set.images.shape[1:]),
        "dataset": train_set.source,
        "label_names": list(train_set.label_names),
        "epochs": j.epochs,
        "augment": augmentation(j.augment, config.data.name),
        "weight_decay": j.weight_decay,
        "net": {k: config_lib.to_dict(config)["judge"][k] for k in ("filters", "convs_per_stage", "pool", "features")},
        f"valid_{metric}": value,
        f"baseline_{metric}": baseline,  # the trivial judge's score (see _baseline_outputs): the scale of the above
        **({f"valid_curve_{metric}": valid_curve} if curve else {}),  # after each epoch
    }
    _save_judge(config, out_dir, params, info)
    logger.info(
        f"judge trained on {train_set.source}: held-out {metric} {value:.3f} (trivial baseline {baseline:.3f}); "
        f"saved in {out_dir}"
    )
    return info


def _save_judge(config: Config, out_dir: str, params, info: dict) -> None:
    """The judge's params, config.json and judge.json under out_dir (every process calls it with the same judge;
    process 0 writes, orbax coordinating the params)."""
    store = CheckpointStore(os.path.join(out_dir, "params"), keep=1)
    store.save(0, jax.device_put(params, sharding.replicated(sharding.data_mesh())))
    store.wait()
    config_lib.save(config, os.path.join(out_dir, "config.json"))
    stages.write_atomically(os.path.join(out_dir, "judge.json"), lambda f: json.dump(info, f, indent=2), mode="w")


def _apply_batches(net, params, images, head: bool = False, batch_size: int = 256):
    fn = jax.jit(lambda p, x: net.apply({"params": p}, datasets.to_unit(x))[1 if head else 0])
    for batch, n_valid in datasets.ordered_batches(images, batch_size):
        yield fn(params, batch)[:n_valid]


def load_judge(judge_dir: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function uint8 or [0, 1] float images (n, H, W, C) -> judge features (n, judge.features)."""
    path = os.path.join(judge_dir, "judge.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{judge_dir} holds no judge ({path} is missing); train one with `ae-jax judge`")
    with open(path) as f:
        info = json.load(f)
    net = _net(info["n_outputs"], info["net"])
    shapes = jax.eval_shape(lambda: net.init(make_key(0), jnp.zeros((1, *info["image_shape"])))["params"])
    replicated = sharding.replicated(sharding.data_mesh())
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes)
    restored = CheckpointStore(os.path.join(judge_dir, "params"), keep=1).restore_latest(abstract)
    if restored is None:
        raise FileNotFoundError(f"no readable judge parameters under {judge_dir}")
    params = jax.tree.map(lambda x: x.addressable_data(0), restored[0])  # this process's own copy

    def features(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            images = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
        if tuple(images.shape[1:]) != tuple(info["image_shape"]):
            raise ValueError(f"judge expects images {tuple(info['image_shape'])}, got {images.shape[1:]}")
        return np.concatenate([np.asarray(f) for f in _apply_batches(net, params, images)])

    return features


@functools.partial(jax.jit, static_argnames=("batch",))
def _resample_moments(features: jax.Array, rows: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
    """((B, D) means, (B, D, D) covariances) of the row resamples features[rows[i]], `batch` at a time."""
    return jax.lax.map(lambda r: stats.covariance(features[r]), rows, batch_size=batch)


def _moments(features, rows) -> tuple[np.ndarray, np.ndarray]:
    """Float64 (means, covariances) of features (n, D): (1, D), (1, D, D) of the whole set, or with rows (B, n)
    one per resample."""
    with jax.enable_x64(True):
        x = jnp.asarray(features, jnp.float64)
        if x.ndim != 2:
            raise ValueError(f"Frechet distances need (n, D) feature sets, got shape {x.shape}")
        rows = jnp.arange(x.shape[0])[None] if rows is None else jnp.asarray(rows)
        return tuple(np.asarray(m) for m in _resample_moments(x, rows, batch=8))


def frechet_distances(reference, sets, rows=None) -> np.ndarray:
    """(S,) Frechet distances of each feature set (n, D) in `sets` from `reference`: |mu_r - mu|^2 +
    Tr(C_r + C - 2 (C_r C)^(1/2)), the FID formula, clamped at 0. With rows = (reference rows (B, n_r), set rows
    (B, n)), the (S, B) distances of bootstrap resamples, the same rows for every set.

    In float64 (means and covariances on the device, the square roots by LAPACK on the host, the same on every
    device): with fewer points than features the covariances are singular, and the square roots of their
    rounding-level eigenvalues sum to negative distances between a set and itself in float32."""
    rows_reference, rows_sets = (None, None) if rows is None else rows
    mu_r, cov_r = _moments(reference, rows_reference)
    w, v = np.linalg.eigh(cov_r)
    sqrt_r = (v * np.sqrt(np.clip(w, 0, None))[:, None]) @ np.swapaxes(v, -1, -2)
    distances = []
    for features in sets:
        mu, cov = _moments(features, rows_sets)
        if mu.shape[-1] != mu_r.shape[-1]:
            raise ValueError(f"Frechet distances need sets of one width, got {mu_r.shape[-1]} and {mu.shape[-1]}")
        cross = np.linalg.eigvalsh(sqrt_r @ cov @ sqrt_r)
        traces = np.trace(cov_r, axis1=-2, axis2=-1) + np.trace(cov, axis1=-2, axis2=-1)
        fd = np.sum((mu_r - mu) ** 2, -1) + traces - 2 * np.sum(np.sqrt(np.clip(cross, 0, None)), -1)
        distances.append(np.maximum(fd, 0.0))
    return np.stack(distances)[:, 0] if rows is None else np.stack(distances)


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance of two feature sets (n, D) (frechet_distances)."""
    return float(frechet_distances(features_a, [features_b])[0])
