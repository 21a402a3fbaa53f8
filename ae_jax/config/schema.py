"""The settings' types: one frozen dataclass per section, the allowed choices, and typed generator specs.

A `GeneratorSpec` is parsed from its text form "<sampler> key=value ..." once, when a config is read; its
`str` gives that text back, so config.json files and stage keys read as they always have.
"""

from __future__ import annotations

import dataclasses
import os

from ae_jax.evaluators.evidence import AUTHOR_UNIFORM_POINTS

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
    "data.placement": ("auto", "host", "device"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.arms_program": ("auto", "vmap", "unroll", "map", "separate"),
    "distribution.zoom_units": ("std", "absolute"),
    "judge.pool": ("flatten", "mean"),
    "judge.augment": ("auto", "flip", "none"),
    "eval.split": ("train", "valid", "test"),
}


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message names the key."""


def _number(text: str) -> int | float | str:
    """A spec parameter's value: an int, else a float, else the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _text(value: int | float | str) -> str:
    """A spec parameter as its text form writes it: floats as %g where that reads back the same number."""
    if isinstance(value, float) and float(f"{value:g}") == value:
        return f"{value:g}"
    return str(value)


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """One generator: a sampler of ae_jax.numerics.samplers.SAMPLERS and its parameters (checked by validate)."""

    sampler: str
    params: tuple[tuple[str, int | float | str], ...] = ()

    @classmethod
    def of(cls, sampler: str, **params: int | float | str) -> GeneratorSpec:
        """GeneratorSpec.of("uniform", bound=1.5): the spec whose text is "uniform bound=1.5"."""
        return cls(sampler, tuple(params.items()))

    @classmethod
    def parse(cls, text: str) -> GeneratorSpec:
        """'uniform bound=1.5' -> GeneratorSpec.of('uniform', bound=1.5); refuses an item that is not key=value."""
        sampler, *items = text.split() or [""]
        params = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"generators.specs {text!r}: {item!r} must look like key=value (e.g. bound=1.5)")
            params[key] = _number(value)
        return cls(sampler, tuple(params.items()))

    def __str__(self) -> str:
        """The text form, "uniform bound=1.5", as --set, config.json and stage keys hold it."""
        return " ".join([self.sampler, *(f"{k}={_text(v)}" for k, v in self.params)])


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
    # where training batches are gathered: host (memory map -> device copy per step) | device (the uint8 images
    # put on every device once, each step's rows gathered there) | auto: device where they fit (data.placement)
    placement: str = "auto"

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
    # arms trained together: vmap (one update over stacked states) | unroll (each arm's update in turn) | map
    # (lax.map: one arm's update at a time) | separate (each arm its own run, one after another) | auto: the
    # fastest per backend (ae_jax.train.arms.AUTO_PROGRAMS)
    arms_program: str = "auto"
    profile_steps: int = 0  # a jax.profiler trace of this many steps after the first into <run>/profile/ (0: none)


@dataclasses.dataclass(frozen=True)
class DistributionConfig:
    """The distribution analysis of z-points (ae_jax.evaluators.distribution)."""

    bin_width: float = 0.25  # component histograms
    hist_range: tuple[float, ...] = ()  # (lo, hi); empty: the data's range rounded out to whole bins
    # Bins per histogram (each component's, each radius width's): past it analysis stops before allocating, naming
    # the value that stretched the range. 16384 bins span 4096 latent units at bin_width 0.25 and radii up to 819 at
    # radius_peak_bin_width 0.05 (the trained models' radii are near 30), so only a diverged value reaches it; the
    # counts then stay under max_hist_bins x z_dim x 4 bytes (4 MiB at z_dim 64, 13 MiB at 200).
    max_hist_bins: int = 16384
    radius_bin_widths: tuple[float, ...] = (0.5, 0.05)  # one radius histogram figure each
    radius_peak_bin_width: float = 0.05  # the radius peak is the centre of this histogram's fullest bin
    dominant_mu: float = 0.25  # a component is dominant when |mu| >= dominant_mu ...
    dominant_fwhm: float = 1.5  # ... or its FWHM >= dominant_fwhm
    count_mu: tuple[float, ...] = (0.25, 1.0)  # summary counts of components with |mu| >= each
    count_fwhm: tuple[float, ...] = (1.0, 1.5, 3.0)  # ... and with FWHM >= each
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
    # The claims' evidence (numbers["evidence"]): points are dealt at random into bootstrap_groups groups (at most
    # one a point, the plain bootstrap over points) whose sums, Gram matrices and histograms add up, and the
    # bootstrap draws groups: each resample then costs a weighted sum, not a pass over the points.
    bootstrap_groups: int = 200
    bootstrap_resamples: int = 100
    interval_level: float = 0.95  # of every bootstrap interval
    null_draws: int = 5  # column shuffles and Gaussian draws of each null; its interval is their spread


@dataclasses.dataclass(frozen=True)
class GeneratorsConfig:
    """Generated z-points (ae_jax.evaluators.generators): which generators, how many points, which data boxes."""

    specs: tuple[GeneratorSpec, ...] = (
        *(GeneratorSpec.of("uniform", bound=b) for b in (1, 1.5, 2, 3, 5, 10, 12)),
        GeneratorSpec.of("isotropic", mu=0, sigma=1),
        GeneratorSpec("diagonal"),
        GeneratorSpec("full"),
        GeneratorSpec.of("mixture", n_components=10),
    )  # one generator each; as text (--set, config.json): "<sampler> key=value ...", comma-separated
    n: int = 10_000  # points per generator (Monte Carlo hits, radii)
    ks: tuple[float, ...] = (1.0, 2.0, 3.0, 12.0)  # data box: each component within mu +- k FWHM
    precision_points: int = 10_000  # encoded points forming the k-NN manifold
    precision_k: int = 3
    grid_images: int = 16  # decoded images per generator in decoded_grid.png
    judge_images: int = 1024  # decoded images per generator scored by the judge (and 2x held-out images)
    judge_resamples: int = 200  # bootstrap resamples of the judge scores' 95% intervals
    # z-points per uniform bound of post II's grid (b x k, in absolute units and in the latent's own); 0: no grid
    author_grid_n: int = AUTHOR_UNIFORM_POINTS


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
    """Intrinsic dimension vs scale (evaluators.intrinsic_dimension): TwoNN and Levina-Bickel MLE of z-points, a
    fitted Gaussian and column-shuffled z-points, and local-PCA one-dimensionality, with bootstrap intervals."""

    min_points: int = 32  # the smallest subset (largest scale)
    max_points: int = 20_000
    mle_k: int = 10  # neighbours of the Levina-Bickel MLE
    local_pca_k: int = 20  # neighbours in each local PCA
    local_pca_points: int = 1000  # points whose neighbourhoods' local PCA is averaged (at the smallest scale)
    bootstrap_resamples: int = 200  # resamples of every 95% interval


@dataclasses.dataclass(frozen=True)
class VaeLatentConfig:
    """A VAE's latent against its prior (evaluators.vae_latent): active units, aggregate posterior's KL, total
    correlation."""

    active_threshold: float = 0.01  # a component is active when its posterior means vary more (Burda et al. 2016)
    bootstrap_resamples: int = 100  # resamples of the points for the 95% intervals


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
    vae_latent: VaeLatentConfig = VaeLatentConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def run_dir(self) -> str:
        return os.path.join(self.workdir, self.name)
