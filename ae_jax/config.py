"""One config system: frozen dataclasses, named presets, `--set key=value` overrides, validation.

A config is refused before any work starts: unknown keys, wrong types and bad values raise
`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from collections.abc import Callable
from typing import Any

DATASET_CHANNELS = {"faces": 3, "celeba": 3, "images": 3, "mnist": 1, "fashion_mnist": 1, "cifar10": 3}
CHOICES = {
    "data.name": tuple(DATASET_CHANNELS),
    "data.task": ("reconstruct", "denoise", "recolor"),
    "data.on_bad_image": ("error", "skip"),
    "model.act": ("leaky_relu", "relu", "selu"),
    "model.encoder_conv_padding": ("same", "valid"),
    "model.decoder_conv_t_padding": ("same", "valid"),
    "model.recon_loss": ("bce", "mse"),
    "model.conv_impl": ("auto", "matmul", "flax"),
    "model.dtype": ("float32", "bfloat16"),
    "train.optimizer": ("adam", "adamw", "sgd"),
}


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message names the key."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    name: str = "faces"  # faces (embedded, no download) | celeba | images | mnist | fashion_mnist | cifar10
    dir: str = ""  # local folder (CelebA layout, image folder, IDX files); empty: embedded faces or TFDS
    tfds_data_dir: str = ""  # TFDS data_dir; empty: TFDS default
    image_size: int = 32  # square side after crop and resize
    crop_size: int = 148  # CelebA: side of the centred square crop of the face region, in source pixels
    num_images: int = 0  # cap on training images (0: all); embedded faces: how many to render
    valid_fraction: float = 0.1  # held-out share where the source has no official split
    cache_dir: str = ""  # decoded uint8 cache; empty: ~/.cache/ae_jax
    on_bad_image: str = "error"  # error: stop naming the file | skip: skip it and count it
    task: str = "reconstruct"  # reconstruct | denoise | recolor
    noise_std: float = 0.1  # denoise: std of Gaussian noise added to the input
    drop_rate: float = 0.0  # denoise: share of input pixels set to zero

    @property
    def channels(self) -> int:
        return DATASET_CHANNELS[self.name]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    encoder_conv_filters: tuple[int, ...] = (32, 64, 64)
    encoder_conv_kernel_size: tuple[int, ...] = (3, 3, 3)
    encoder_conv_strides: tuple[int, ...] = (2, 2, 2)
    encoder_conv_padding: str = "same"
    decoder_conv_t_filters: tuple[int, ...] = (64, 32, 3)  # the last is the image's channel count
    decoder_conv_t_kernel_size: tuple[int, ...] = (3, 3, 3)
    decoder_conv_t_strides: tuple[int, ...] = (2, 2, 2)
    decoder_conv_t_padding: str = "same"
    z_dim: int = 32
    act: str = "leaky_relu"
    variational: bool = False
    kl_weight: float = 0.0  # weight of the per-image KL (nats) against the per-image reconstruction sum
    recon_loss: str = "bce"  # bce | mse, summed over pixels per image
    conv_impl: str = "auto"  # matmul (im2col convs, fast on XLA:CPU) | flax (nn.Conv*) | auto: matmul on CPU
    dtype: str = "float32"  # compute dtype; parameters stay float32


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    epochs: int = 10
    steps_per_epoch: int = 0  # 0: one pass over the training set
    learning_rate: float = 5e-4
    optimizer: str = "adam"
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    eval_images: int = 1024  # held-out images evaluated per epoch (0: all)
    grid_images: int = 8  # originals/reconstructions shown per epoch
    prefetch: int = 2  # batches prepared ahead of the device


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "faces"  # run name: output goes to <workdir>/<name>/
    seed: int = 0
    workdir: str = "checkpoints"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    @property
    def run_dir(self) -> str:
        return os.path.join(self.workdir, self.name)


def _arch(enc_filters, enc_kernels, dec_filters, dec_kernels, strides=2, **model) -> ModelConfig:
    n_enc, n_dec = len(enc_filters), len(dec_filters)
    if isinstance(strides, int):
        strides = ((strides,) * n_enc, (strides,) * n_dec)
    return ModelConfig(
        encoder_conv_filters=tuple(enc_filters),
        encoder_conv_kernel_size=tuple(enc_kernels),
        encoder_conv_strides=tuple(strides[0]),
        decoder_conv_t_filters=tuple(dec_filters),
        decoder_conv_t_kernel_size=tuple(dec_kernels),
        decoder_conv_t_strides=tuple(strides[1]),
        **model,
    )


_CELEBA = DataConfig(name="celeba", image_size=96)
_TINY_KL = dict(variational=True, kl_weight=1e-6)
_CASE1 = dict(
    enc_filters=(32, 64, 128, 256),
    enc_kernels=(3, 3, 3, 3),
    dec_filters=(128, 64, 32, 3),
    dec_kernels=(3, 3, 3, 3),
    z_dim=256,
)
_CASE2 = dict(
    enc_filters=(64, 64, 128, 128),
    enc_kernels=(5, 5, 3, 3),
    dec_filters=(128, 64, 64, 3),
    dec_kernels=(3, 3, 5, 5),
    z_dim=256,
)
_MNIST = dict(
    enc_filters=(32, 64, 64, 64),
    enc_kernels=(3, 3, 3, 3),
    dec_filters=(64, 64, 32, 1),
    dec_kernels=(3, 3, 3, 3),
    strides=((1, 2, 2, 1), (1, 2, 2, 1)),
    z_dim=2,
)
_FACES = dict(enc_filters=(32, 64, 64), enc_kernels=(3, 3, 3), dec_filters=(64, 32, 3), dec_kernels=(3, 3, 3), z_dim=32)

PRESETS: dict[str, Callable[[], Config]] = {
    "case1": lambda: Config(name="case1", data=_CELEBA, model=_arch(**_CASE1)),
    "case1_vae_tiny_kl": lambda: Config(name="case1_vae_tiny_kl", data=_CELEBA, model=_arch(**_CASE1, **_TINY_KL)),
    "case2": lambda: Config(name="case2", data=_CELEBA, model=_arch(**_CASE2)),
    "case2_vae_tiny_kl": lambda: Config(name="case2_vae_tiny_kl", data=_CELEBA, model=_arch(**_CASE2, **_TINY_KL)),
    "mnist": lambda: Config(name="mnist", data=DataConfig(name="mnist", image_size=28), model=_arch(**_MNIST)),
    "fashion_mnist": lambda: Config(
        name="fashion_mnist", data=DataConfig(name="fashion_mnist", image_size=28), model=_arch(**_MNIST)
    ),
    "cifar10": lambda: Config(name="cifar10", data=DataConfig(name="cifar10", image_size=32), model=_arch(**_FACES)),
    "faces": lambda: Config(
        name="faces", data=DataConfig(name="faces", image_size=32, num_images=4096), model=_arch(**_FACES)
    ),
    "faces_vae_tiny_kl": lambda: Config(
        name="faces_vae_tiny_kl",
        data=DataConfig(name="faces", image_size=32, num_images=4096),
        model=_arch(**_FACES, **_TINY_KL),
    ),
}


# ---------------------------------------------------------------------------------------------
# Conversion between configs, dicts and `key=value` strings.


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def _parse_value(key: str, kind: Any, value: Any) -> Any:
    """Coerce a JSON value or command-line string to the field's type, or raise naming `key`."""
    origin = typing.get_origin(kind)
    try:
        if origin is tuple:
            (elem, _) = typing.get_args(kind)
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_parse_value(key, elem, v.strip() if isinstance(v, str) else v) for v in items)
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    name = getattr(kind, "__name__", str(kind))
    raise ConfigError(f"{key}: {value!r} is not a valid {name}")


def _fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _replace(obj, updates: dict, prefix: str = ""):
    """Return `obj` with nested `updates` applied; unknown keys are refused."""
    fields = _fields(type(obj))
    changes = {}
    for key, value in updates.items():
        full = prefix + key
        if key not in fields:
            raise ConfigError(f"unknown config key {full!r}; valid keys at this level: {', '.join(fields)}")
        kind = fields[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a mapping of {', '.join(_fields(kind))}")
            changes[key] = _replace(getattr(obj, key), value, full + ".")
        else:
            changes[key] = _parse_value(full, kind, value)
    return dataclasses.replace(obj, **changes)


def from_dict(d: dict, base: Config | None = None) -> Config:
    return _replace(base or Config(), d)


def parse_overrides(items: list[str]) -> dict:
    """['data.dir=x', 'model.z_dim=8'] -> {'data': {'dir': 'x'}, 'model': {'z_dim': '8'}}."""
    nested: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.z_dim=64)")
        key, value = item.split("=", 1)
        node = nested
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with an earlier one")
        node[leaf] = value
    return nested


def load(spec: str, overrides: list[str] = ()) -> Config:
    """Resolve a preset name or a JSON config file (optionally with a "base" preset), then overrides."""
    if spec in PRESETS:
        config = PRESETS[spec]()
    elif os.path.isfile(spec):
        with open(spec) as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{spec}: not valid JSON ({e})") from None
        base = d.pop("base", None)
        if base is not None and base not in PRESETS:
            raise ConfigError(f"{spec}: base {base!r} is not a preset; presets: {', '.join(PRESETS)}")
        config = from_dict(d, PRESETS[base]() if base else Config())
    else:
        raise ConfigError(f"--config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
    config = from_dict(parse_overrides(list(overrides)), config)
    validate(config)
    return config


def save(config: Config, path: str) -> None:
    with open(path, "w") as f:
        json.dump(to_dict(config), f, indent=2)


# ---------------------------------------------------------------------------------------------
# Validation: everything checkable before data is read or a model is built.


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def feature_map_sizes(size: int, strides, kernels, padding: str) -> list[int]:
    """Spatial sizes after each encoder conv (Keras conventions for 'same' and 'valid')."""
    sizes = [size]
    for s, k in zip(strides, kernels):
        sizes.append(math.ceil(size / s) if padding == "same" else (size - k) // s + 1)
        size = sizes[-1]
    return sizes


def decoder_sizes(size: int, strides, kernels, padding: str) -> list[int]:
    """Spatial sizes after each decoder transposed conv (as flax/lax `conv_transpose` computes them)."""
    sizes = [size]
    for s, k in zip(strides, kernels):
        sizes.append(size * s if padding == "same" else size * s + max(k - s, 0))
        size = sizes[-1]
    return sizes


def validate(config: Config) -> None:
    for key, allowed in CHOICES.items():
        section, field = key.split(".")
        value = getattr(getattr(config, section), field)
        _check(value in allowed, key, f"{value!r} is not one of {', '.join(allowed)}")
    d, m, t = config.data, config.model, config.train
    _check(bool(config.name) and "/" not in config.name, "name", "must be a non-empty name without '/'")
    _check(d.image_size > 0, "data.image_size", "must be > 0")
    _check(d.crop_size > 0, "data.crop_size", "must be > 0")
    _check(d.num_images >= 0, "data.num_images", "must be >= 0 (0: all)")
    _check(0 < d.valid_fraction < 1, "data.valid_fraction", "must be in (0, 1)")
    _check(d.noise_std >= 0, "data.noise_std", "must be >= 0")
    _check(0 <= d.drop_rate < 1, "data.drop_rate", "must be in [0, 1)")
    _check(m.z_dim > 0, "model.z_dim", f"must be > 0, got {m.z_dim}")
    _check(m.kl_weight >= 0, "model.kl_weight", f"must be >= 0, got {m.kl_weight}")
    _check(not (m.kl_weight > 0 and not m.variational), "model.kl_weight", "is only used with model.variational=true")
    for prefix, names in (
        ("encoder_conv", ("filters", "kernel_size", "strides")),
        ("decoder_conv_t", ("filters", "kernel_size", "strides")),
    ):
        lists = {n: getattr(m, f"{prefix}_{n}") for n in names}
        n0 = len(lists["filters"])
        _check(n0 > 0, f"model.{prefix}_filters", "needs at least one layer")
        for n, v in lists.items():
            _check(len(v) == n0, f"model.{prefix}_{n}", f"has {len(v)} entries but {prefix}_filters has {n0}")
            _check(all(x > 0 for x in v), f"model.{prefix}_{n}", f"entries must be > 0, got {v}")
    _check(
        m.decoder_conv_t_filters[-1] == d.channels,
        "model.decoder_conv_t_filters",
        f"the last entry must equal the image channel count {d.channels} of data.name={d.name!r}, "
        f"got {m.decoder_conv_t_filters[-1]}",
    )
    enc = feature_map_sizes(d.image_size, m.encoder_conv_strides, m.encoder_conv_kernel_size, m.encoder_conv_padding)
    if m.encoder_conv_padding == "same":
        total = math.prod(m.encoder_conv_strides)
        _check(
            d.image_size % total == 0,
            "model.encoder_conv_strides",
            f"strides {m.encoder_conv_strides} (product {total}) do not divide data.image_size={d.image_size}",
        )
    _check(enc[-1] > 0, "model.encoder_conv_kernel_size", f"feature maps shrink to nothing: sizes {enc}")
    dec = decoder_sizes(enc[-1], m.decoder_conv_t_strides, m.decoder_conv_t_kernel_size, m.decoder_conv_t_padding)
    _check(
        dec[-1] == d.image_size,
        "model.decoder_conv_t_strides",
        f"decoder output size {dec[-1]} (sizes {dec}) differs from data.image_size={d.image_size}",
    )
    for key in ("batch_size", "epochs", "checkpoint_every_steps", "keep_checkpoints", "grid_images", "prefetch"):
        _check(getattr(t, key) > 0, f"train.{key}", "must be > 0")
    for key in ("steps_per_epoch", "eval_images"):
        _check(getattr(t, key) >= 0, f"train.{key}", "must be >= 0")
    _check(t.learning_rate > 0, "train.learning_rate", "must be > 0")
