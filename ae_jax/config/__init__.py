"""One config system: frozen dataclasses (schema), named presets (presets), typed updates and `--set key=value`
overrides, validation.

A config is refused before any work starts: unknown keys, wrong types and bad values raise
`ConfigError` naming the key and what is allowed. Text (--set, config.json) is parsed here, once.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from ae_jax.config.presets import PRESETS
from ae_jax.config.schema import (
    CHOICES,
    DATASET_CHANNELS,
    Config,
    ConfigError,
    DataConfig,
    DistributionConfig,
    EvalConfig,
    GeneratorsConfig,
    GeneratorSpec,
    IntrinsicConfig,
    JudgeConfig,
    ModelConfig,
    TrainConfig,
    VaeLatentConfig,
)
from ae_jax.numerics.samplers import check_params

__all__ = [
    "CHOICES",
    "DATASET_CHANNELS",
    "PRESETS",
    "Config",
    "ConfigError",
    "DataConfig",
    "DistributionConfig",
    "EvalConfig",
    "GeneratorSpec",
    "GeneratorsConfig",
    "IntrinsicConfig",
    "JudgeConfig",
    "ModelConfig",
    "TrainConfig",
    "VaeLatentConfig",
    "decoder_sizes",
    "did_you_mean",
    "feature_map_sizes",
    "from_dict",
    "load",
    "load_run_config",
    "nest",
    "override",
    "parse_overrides",
    "plain",
    "save",
    "to_dict",
    "validate",
]

# ---------------------------------------------------------------------------------------------
# Conversion between configs, dicts and `key=value` strings.


def to_dict(config: Config) -> dict:
    """Every setting as JSON values, generator specs as their text: what config.json holds and stage keys hash."""
    return plain(config)


def plain(value: Any) -> Any:
    """Configs, generator specs and dicts or tuples of them as JSON values: dataclasses as dicts, specs as text."""
    if isinstance(value, GeneratorSpec):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _parse_value(key: str, kind: Any, value: Any) -> Any:
    """Coerce a typed value, JSON value or command-line string to the field's type, or raise naming `key`."""
    if kind is GeneratorSpec and isinstance(value, (str, GeneratorSpec)):
        return GeneratorSpec.parse(value) if isinstance(value, str) else value
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
    except ConfigError:  # an item's own message (a tuple's bad generator spec) names what is wrong
        raise
    except (TypeError, ValueError):
        pass
    name = getattr(kind, "__name__", str(kind))
    raise ConfigError(f"{key}: {value!r} is not a valid {name}")


def did_you_mean(word: str, allowed: Sequence[str]) -> str:
    """ " (did you mean 'x'?)" naming the allowed words closest to a misspelt one, or "": the one hint for presets,
    config keys, evaluators and studies."""
    return _suggestion(difflib.get_close_matches(word, list(allowed), n=3, cutoff=0.6))


def _suggestion(names: Sequence[str]) -> str:
    return f" (did you mean {' or '.join(map(repr, names))}?)" if names else ""


def _leaf_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key under a config dataclass: 'train.epochs', 'data.dir', ..."""
    keys = []
    for name, kind in _fields(cls).items():
        keys += _leaf_keys(kind, f"{prefix}{name}.") if dataclasses.is_dataclass(kind) else [prefix + name]
    return keys


def _key_hint(key: str, prefix: str, fields: Sequence[str]) -> str:
    """The did-you-mean for an unknown key: a close key of its own section, else the dotted keys ending in it
    (`epochs` -> `train.epochs`), else the closest dotted keys."""
    close = [prefix + name for name in difflib.get_close_matches(key, list(fields), n=3, cutoff=0.6)]
    if not close:
        every = _leaf_keys(Config)
        close = [k for k in every if k.endswith("." + key)] or difflib.get_close_matches(prefix + key, every, n=3)
    return _suggestion(close)


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
            raise ConfigError(
                f"unknown config key {full!r}{_key_hint(key, prefix, list(fields))}; valid keys at this level: "
                f"{', '.join(fields)}"
            )
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


def parse_overrides(items: Sequence[str]) -> dict:
    """['data.dir=x', 'model.z_dim=8'] -> {'data': {'dir': 'x'}, 'model': {'z_dim': '8'}}."""
    flat = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.z_dim=64)")
        key, value = item.split("=", 1)
        flat[key.strip()] = value
    return nest(flat)


def nest(updates: Mapping[str, Any]) -> dict:
    """{'data.dir': 'x', 'model.z_dim': 8} -> {'data': {'dir': 'x'}, 'model': {'z_dim': 8}}."""
    nested: dict = {}
    for key, value in updates.items():
        node = nested
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with an earlier one")
        node[leaf] = value
    return nested


def load(spec: str, overrides: Sequence[str] = (), updates: Mapping[str, Any] | None = None) -> Config:
    """Resolve a preset name or a JSON config file (optionally with a "base" preset), then typed updates
    (e.g. {"data.num_images": 4096}), then `key=value` overrides; validated."""
    if spec in PRESETS:
        config = PRESETS[spec]
    elif os.path.isfile(spec):
        with open(spec) as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{spec}: not valid JSON ({e})") from None
        base = d.pop("base", None)
        if base is not None and base not in PRESETS:
            raise ConfigError(
                f"{spec}: base {base!r} is not a preset{did_you_mean(base, PRESETS)}; presets: {', '.join(PRESETS)}"
            )
        config = from_dict(d, PRESETS[base] if base else Config())
    else:
        raise ConfigError(
            f"--config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file{did_you_mean(spec, PRESETS)}"
        )
    return override(config, overrides, updates)


def override(config: Config, overrides: Sequence[str] = (), updates: Mapping[str, Any] | None = None) -> Config:
    """The config with typed `updates` ({dotted key: value}) then `key=value` overrides applied, validated: both
    refuse an unknown key naming it."""
    config = from_dict(parse_overrides(overrides), from_dict(nest(updates or {}), config))
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
    """Refuse a config before any work starts, naming the first bad key (sections in a fixed order)."""
    _check_choices(config)
    _check(bool(config.name) and "/" not in config.name, "name", "must be a non-empty name without '/'")
    _check_data(config.data)
    _check_model_sizes(config.model)
    _check_conv_lists(config.model)
    _check_shapes(config.data, config.model)
    _check_train(config.train)
    _check_analysis(config)


def _check_choices(config: Config) -> None:
    """Every enumerated setting (CHOICES) holds one of its allowed values."""
    for key, allowed in CHOICES.items():
        section, field = key.split(".")
        value = getattr(getattr(config, section), field)
        _check(value in allowed, key, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def _check_data(d: DataConfig) -> None:
    """The data section: positive sizes, fractions in range, channels and task the dataset can serve."""
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


def _check_model_sizes(m: ModelConfig) -> None:
    """A positive latent size, and a KL weight only where the model is variational."""
    _check(m.z_dim > 0, "model.z_dim", f"must be > 0, got {m.z_dim}")
    _check(m.kl_weight >= 0, "model.kl_weight", f"must be >= 0, got {m.kl_weight}")
    _check(not (m.kl_weight > 0 and not m.variational), "model.kl_weight", "is only used with model.variational=true")


def _check_conv_lists(m: ModelConfig) -> None:
    """Encoder and decoder per-layer lists: non-empty, equally long, positive entries."""
    for prefix in ("encoder_conv", "decoder_conv_t"):
        lists = {n: getattr(m, f"{prefix}_{n}") for n in ("filters", "kernel_size", "strides")}
        n0 = len(lists["filters"])
        _check(n0 > 0, f"model.{prefix}_filters", "needs at least one layer")
        for n, v in lists.items():
            _check(len(v) == n0, f"model.{prefix}_{n}", f"has {len(v)} entries but {prefix}_filters has {n0}")
            _check(all(x > 0 for x in v), f"model.{prefix}_{n}", f"entries must be > 0, got {v}")


def _check_shapes(d: DataConfig, m: ModelConfig) -> None:
    """The decoder ends in the image's channels and, after the encoder, returns to the image's size."""
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


def _check_train(t: TrainConfig) -> None:
    """The train section: positive counts and learning rate; 0 allowed where it means 'all'."""
    for key in ("batch_size", "epochs", "checkpoint_every_steps", "keep_checkpoints", "grid_images", "prefetch"):
        _check(getattr(t, key) > 0, f"train.{key}", "must be > 0")
    for key in ("steps_per_epoch", "eval_images", "profile_steps"):
        _check(getattr(t, key) >= 0, f"train.{key}", "must be >= 0")
    _check(t.learning_rate > 0, "train.learning_rate", "must be > 0")


def _check_analysis(config: Config) -> None:
    """The sections after training: positive sizes and widths, ranges in order."""
    _check_distribution(config.distribution)
    _check_generators(config.generators, config.judge)
    _check_judge(config.judge)
    i = config.intrinsic
    _check(3 <= i.min_points <= i.max_points, "intrinsic.min_points", "must be in 3..intrinsic.max_points")
    for key in ("mle_k", "local_pca_k"):
        _check(2 <= getattr(i, key) < i.min_points, f"intrinsic.{key}", "must be in 2..intrinsic.min_points - 1")
    _check(i.local_pca_points > 0, "intrinsic.local_pca_points", "must be > 0")
    _check(i.bootstrap_resamples >= 2, "intrinsic.bootstrap_resamples", "must be >= 2")
    _check(config.vae_latent.active_threshold > 0, "vae_latent.active_threshold", "must be > 0")
    _check(config.vae_latent.bootstrap_resamples >= 2, "vae_latent.bootstrap_resamples", "must be >= 2")
    _check(all(k > 0 for k in config.eval.report_ks), "eval.report_ks", "entries must be > 0")


def _check_hist_range(a: DistributionConfig) -> None:
    """An explicit histogram range is lo,hi with hi > lo spanning a whole number of bins."""
    if not a.hist_range:
        return
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
    _check(
        round(bins) <= a.max_hist_bins,
        "distribution.hist_range",
        f"{a.hist_range} holds {round(bins):,} bins of {a.bin_width:g}, past "
        f"distribution.max_hist_bins={a.max_hist_bins}: narrow the range, widen distribution.bin_width or raise "
        "distribution.max_hist_bins",
    )


def _check_distribution(a: DistributionConfig) -> None:
    """The distribution section: bin widths and ranges, positive widths and counts, valid axis pairs."""
    _check(a.bin_width > 0, "distribution.bin_width", "must be > 0")
    _check(a.max_hist_bins >= 1, "distribution.max_hist_bins", "must be >= 1")
    _check_hist_range(a)
    for key in ("radius_bin_widths", "zoom_half_sides", "count_mu", "count_fwhm"):
        values = getattr(a, key)
        _check(all(v > 0 for v in values), f"distribution.{key}", f"entries must be > 0, got {values}")
    for key in (
        "radius_peak_bin_width",
        "dominant_mu",
        "dominant_fwhm",
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
    for key in ("bootstrap_groups", "bootstrap_resamples"):
        _check(getattr(a, key) >= 2, f"distribution.{key}", "must be >= 2")
    _check(a.null_draws >= 1, "distribution.null_draws", "must be >= 1")
    _check(0 < a.interval_level < 1, "distribution.interval_level", f"must be in (0, 1), got {a.interval_level}")


def _check_generators(g: GeneratorsConfig, j: JudgeConfig) -> None:
    """The generators section: known samplers, positive sizes, more points than neighbours."""
    _check(len(g.specs) > 0, "generators.specs", "needs at least one generator")
    for spec in g.specs:
        _check_spec(spec)
    _check(len(g.ks) > 0 and all(k > 0 for k in g.ks), "generators.ks", f"entries must be > 0, got {g.ks}")
    _check(g.n > 0, "generators.n", "must be > 0")
    _check(g.precision_k >= 1, "generators.precision_k", "must be >= 1")
    _check(g.precision_points > g.precision_k, "generators.precision_points", "must exceed generators.precision_k")
    _check(g.grid_images > 0, "generators.grid_images", "must be > 0")
    _check(g.judge_images > j.precision_k, "generators.judge_images", "must exceed judge.precision_k")
    _check(g.judge_resamples >= 20, "generators.judge_resamples", "must be >= 20 (a 95% interval's tails)")
    _check(g.author_grid_n >= 0, "generators.author_grid_n", "must be >= 0 (0: no grid)")


def _check_judge(j: JudgeConfig) -> None:
    """The judge section: positive training sizes, a non-negative weight decay, positive filters."""
    for key in ("epochs", "batch_size", "learning_rate", "precision_k", "features", "convs_per_stage"):
        _check(getattr(j, key) > 0, f"judge.{key}", "must be > 0")
    _check(j.weight_decay >= 0, "judge.weight_decay", "must be >= 0")
    _check(
        len(j.filters) > 0 and all(f > 0 for f in j.filters), "judge.filters", f"entries must be > 0, got {j.filters}"
    )


def _check_spec(spec: GeneratorSpec) -> None:
    """Refuse a generator whose sampler or parameter names do not exist, naming the spec and what is allowed."""
    try:
        check_params(spec.sampler, dict(spec.params))
    except ValueError as e:
        raise ConfigError(f"generators.specs {str(spec)!r}: {e}") from None
