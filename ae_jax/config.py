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
    "data.channels": (0, 1, 3),
    "model.act": ("leaky_relu", "relu", "selu"),
    "model.encoder_conv_padding": ("same", "valid"),
    "model.decoder_conv_t_padding": ("same", "valid"),
    "model.recon_loss": ("bce", "mse"),
    "model.conv_impl": ("auto", "matmul", "flax"),
    "model.dtype": ("float32", "bfloat16"),
    "model.init": ("flax", "keras"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "distribution.zoom_units": ("std", "absolute"),
    "judge.pool": ("flatten", "mean"),
    "judge.augment": ("auto", "flip", "none"),
    "eval.split": ("train", "valid", "test"),
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
    channels: int = 0  # 0: the dataset's own (DATASET_CHANNELS); images: 1 (grey) or 3 (RGB)
    convert_mode: bool = False  # an image of the other kind (grey in RGB, RGB in grey): convert it, not refuse it

    @property
    def image_channels(self) -> int:
        """The channel count the images are read at: data.channels, or the dataset's own when 0."""
        return self.channels or DATASET_CHANNELS[self.name]


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
    init: str = "flax"  # kernel initialiser: flax (lecun_normal) | keras (glorot_uniform, the seed's layers)


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
class DistributionConfig:
    """The distribution analysis of z-points (ae_jax.evaluators.distribution)."""

    bin_width: float = 0.25  # component histograms
    hist_range: tuple[float, ...] = ()  # (lo, hi); empty: the data's range rounded out to whole bins
    radius_bin_widths: tuple[float, ...] = (0.5, 0.05)  # one radius histogram figure each
    radius_peak_bin_width: float = 0.05  # the radius peak is the centre of this histogram's fullest bin
    dominant_mu: float = 0.25  # a component is dominant when |mu| >= dominant_mu ...
    dominant_half_width: float = 1.5  # ... or its half-width >= dominant_half_width
    count_mu: tuple[float, ...] = (0.25, 1.0)  # summary counts of components with |mu| >= each
    count_half_width: tuple[float, ...] = (1.0, 1.5, 3.0)  # ... and with half-width >= each
    shown_dominant: int = 8  # components drawn in components_dominant.png
    radius_outliers: int = 10  # largest-radius points listed in the summary
    nn_points: int = 20_000  # random points whose nearest-neighbour distance is measured (0: all)
    pca_axis_pairs: tuple[tuple[int, int], ...] = ((1, 18), (8, 35))  # 1-based principal axes to plot
    zoom_half_sides: tuple[float, ...] = (4.0, 1.0, 0.5, 0.25, 0.1)  # PCA 1-2 plane windows
    zoom_units: str = "std"  # std: multiples of each principal axis' standard deviation | absolute
    tsne: bool = False  # the slow part (minutes for 100,000 points): on request
    tsne_points: int = 20_000  # random points embedded (0: all)
    tsne_inputs: tuple[int, ...] = (0, 2, 4, 10)  # 0: raw z; k: the first k principal components
    tsne_perplexity: float = 10.0
    tsne_early_exaggeration: float = 16.0
    tsne_iterations: int = 500
    tsne_exaggeration_iterations: int = 250


@dataclasses.dataclass(frozen=True)
class GeneratorsConfig:
    """Generated z-points (ae_jax.evaluators.generators): which generators, how many points, which data boxes."""

    specs: tuple[str, ...] = (
        *(f"uniform bound={b:g}" for b in (1, 1.5, 2, 3, 5, 10, 12)),
        "isotropic mu=0 sigma=1",
        "diagonal",
        "full",
        "mixture n_components=10",
    )  # "<sampler> key=value ...", one generator each
    n: int = 10_000  # points per generator (Monte Carlo hits, radii)
    ks: tuple[float, ...] = (1.0, 2.0, 3.0, 12.0)  # data box: each component within mu +- k half-widths
    precision_points: int = 10_000  # encoded points forming the k-NN manifold
    precision_k: int = 3
    grid_images: int = 16  # decoded images per generator in decoded_grid.png
    judge_images: int = 256  # decoded images per generator scored by the judge


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    """The feature network that scores decoded images (ae_jax.train.judge), trained on data's labels."""

    epochs: int = 20  # what the faces need at batch 16, with a margin; CelebA plateaus after 3 (the studies set 5)
    batch_size: int = 16  # small batches: more steps per epoch, which the faces' factors need
    learning_rate: float = 1e-3
    filters: tuple[int, ...] = (32, 64, 128)  # one stage each: a stride-2 3x3 convolution ...
    convs_per_stage: int = 1  # ... then convs_per_stage - 1 stride-1 ones
    pool: str = "flatten"  # flatten (keeps where things are) | mean (global average)
    features: int = 128  # width of the feature layer the scores are computed in
    augment: str = "auto"  # flip (random left-right mirror) | none | auto: flip where labels allow (CelebA, CIFAR)
    weight_decay: float = 0.0  # decoupled (AdamW) weight decay; 0: plain Adam
    precision_k: int = 3  # k of the k-NN precision and recall in judge feature space


@dataclasses.dataclass(frozen=True)
class IntrinsicConfig:
    """TwoNN intrinsic dimension vs scale (evaluators.intrinsic_dimension) of z-points and of a fitted Gaussian null."""

    min_points: int = 32  # the smallest subset (largest scale)
    max_points: int = 20_000


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Which evaluators run on a trained run, on which split's z-points, and what the report shows."""

    names: tuple[str, ...] = ("reconstruction", "distribution", "generators")
    split: str = "train"
    report_ks: tuple[float, ...] = (2.0, 3.0)  # the k of the generator tables in reports


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "faces"  # run name: output goes to <workdir>/<name>/
    seed: int = 0
    workdir: str = "checkpoints"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    distribution: DistributionConfig = DistributionConfig()
    generators: GeneratorsConfig = GeneratorsConfig()
    judge: JudgeConfig = JudgeConfig()
    intrinsic: IntrinsicConfig = IntrinsicConfig()
    eval: EvalConfig = EvalConfig()

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

# Seconds instead of minutes: the tests, `ae-jax demo --quick` and the smoke studies all run this size.
_TINY_MODEL = dict(enc_filters=(8, 16), enc_kernels=(3, 3), dec_filters=(8, 3), dec_kernels=(3, 3), z_dim=4)
_TINY = dict(
    data=DataConfig(name="faces", image_size=16, num_images=96),
    train=TrainConfig(epochs=1, batch_size=16, eval_images=32, grid_images=4, learning_rate=3e-3),
    distribution=DistributionConfig(tsne_iterations=30, tsne_exaggeration_iterations=20),
    generators=GeneratorsConfig(n=500),
    judge=JudgeConfig(epochs=1),
)

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
    "tiny": lambda: Config(name="tiny", model=_arch(**_TINY_MODEL), **_TINY),
    "tiny_vae_tiny_kl": lambda: Config(name="tiny_vae_tiny_kl", model=_arch(**_TINY_MODEL, **_TINY_KL), **_TINY),
}


# ---------------------------------------------------------------------------------------------
# Conversion between configs, dicts and `key=value` strings.


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def _parse_value(key: str, kind: Any, value: Any) -> Any:
    """Coerce a JSON value or command-line string to the field's type, or raise naming `key`."""
    origin = typing.get_origin(kind)
    try:
        if origin is tuple:  # tuple[X, ...]: items split at ","; tuple[X, Y]: fixed length, split at ":"
            args = typing.get_args(kind)
            variable = args[-1] is Ellipsis
            items = value.split("," if variable else ":") if isinstance(value, str) else list(value)
            if isinstance(value, str) and not value.strip():
                items = []
            kinds = [args[0]] * len(items) if variable else list(args)
            if len(kinds) != len(items):
                raise ValueError
            return tuple(_parse_value(key, k, v.strip() if isinstance(v, str) else v) for k, v in zip(kinds, items))
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
    return override(config, overrides)


def override(config: Config, overrides: list[str] = ()) -> Config:
    """The config with `key=value` overrides applied, validated."""
    config = from_dict(parse_overrides(list(overrides)), config)
    validate(config)
    return config


def save(config: Config, path: str) -> None:
    """config.json: every setting, written atomically."""
    from ae_jax.stages import write_json

    write_json(path, to_dict(config))


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
        _check(value in allowed, key, f"{value!r} is not one of {', '.join(map(str, allowed))}")
    d, m, t = config.data, config.model, config.train
    _check(bool(config.name) and "/" not in config.name, "name", "must be a non-empty name without '/'")
    _check(d.image_size > 0, "data.image_size", "must be > 0")
    _check(d.crop_size > 0, "data.crop_size", "must be > 0")
    _check(d.num_images >= 0, "data.num_images", "must be >= 0 (0: all)")
    _check(0 < d.valid_fraction < 1, "data.valid_fraction", "must be in (0, 1)")
    _check(d.noise_std >= 0, "data.noise_std", "must be >= 0")
    _check(0 <= d.drop_rate < 1, "data.drop_rate", "must be in [0, 1)")
    own = DATASET_CHANNELS[d.name]
    _check(
        d.name == "images" or d.channels in (0, own),
        "data.channels",
        f"only data.name=images can be read at another channel count than its own; data.name={d.name} has {own} "
        "(set data.channels=0)",
    )
    _check(
        d.task != "recolor" or d.image_channels == 3,
        "data.task",
        f"recolor needs RGB images, data.name={d.name} is read with {d.image_channels} channel (data.channels)",
    )
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
        m.decoder_conv_t_filters[-1] == d.image_channels,
        "model.decoder_conv_t_filters",
        f"the last entry must equal the image channel count {d.image_channels} of data.name={d.name!r} "
        f"(data.channels={d.channels}), got {m.decoder_conv_t_filters[-1]}",
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
    _check_analysis(config)


def _check_analysis(config: Config) -> None:
    """The sections after training: positive sizes and widths, ranges in order."""
    a, g, j, i = config.distribution, config.generators, config.judge, config.intrinsic
    _check(a.bin_width > 0, "distribution.bin_width", "must be > 0")
    if a.hist_range:
        _check(
            len(a.hist_range) == 2 and a.hist_range[1] > a.hist_range[0],
            "distribution.hist_range",
            f"must be empty (from the data) or lo,hi with hi > lo, got {a.hist_range}",
        )
        bins = (a.hist_range[1] - a.hist_range[0]) / a.bin_width
        _check(
            math.isclose(bins, round(bins), rel_tol=1e-9),
            "distribution.hist_range",
            f"hi - lo = {a.hist_range[1] - a.hist_range[0]:g} is not a whole number of bins of {a.bin_width:g}",
        )
    for key in ("radius_bin_widths", "zoom_half_sides", "count_mu", "count_half_width"):
        values = getattr(a, key)
        _check(all(v > 0 for v in values), f"distribution.{key}", f"entries must be > 0, got {values}")
    for key in (
        "radius_peak_bin_width",
        "dominant_mu",
        "dominant_half_width",
        "tsne_perplexity",
        "tsne_early_exaggeration",
        "tsne_iterations",
        "tsne_exaggeration_iterations",
    ):
        _check(getattr(a, key) > 0, f"distribution.{key}", "must be > 0")
    for key in ("shown_dominant", "radius_outliers", "nn_points", "tsne_points"):
        _check(getattr(a, key) >= 0, f"distribution.{key}", "must be >= 0")
    _check(
        all(x >= 1 and y >= 1 and x != y for x, y in a.pca_axis_pairs),
        "distribution.pca_axis_pairs",
        f"pairs of two different 1-based axes, e.g. 1:18,8:35, got {a.pca_axis_pairs}",
    )
    _check(all(k >= 0 for k in a.tsne_inputs), "distribution.tsne_inputs", "0 (raw z) or a number of components")
    _check(len(g.specs) > 0, "generators.specs", "needs at least one generator")
    _check(len(g.ks) > 0 and all(k > 0 for k in g.ks), "generators.ks", f"entries must be > 0, got {g.ks}")
    _check(g.n > 0, "generators.n", "must be > 0")
    _check(g.precision_k >= 1, "generators.precision_k", "must be >= 1")
    _check(g.precision_points > g.precision_k, "generators.precision_points", "must exceed generators.precision_k")
    _check(g.grid_images > 0, "generators.grid_images", "must be > 0")
    _check(g.judge_images > j.precision_k, "generators.judge_images", "must exceed judge.precision_k")
    for key in ("epochs", "batch_size", "learning_rate", "precision_k", "features", "convs_per_stage"):
        _check(getattr(j, key) > 0, f"judge.{key}", "must be > 0")
    _check(j.weight_decay >= 0, "judge.weight_decay", "must be >= 0")
    _check(
        len(j.filters) > 0 and all(f > 0 for f in j.filters), "judge.filters", f"entries must be > 0, got {j.filters}"
    )
    _check(3 <= i.min_points <= i.max_points, "intrinsic.min_points", "must be in 3..intrinsic.max_points")
    _check(all(k > 0 for k in config.eval.report_ks), "eval.report_ks", "entries must be > 0")
