"""The named presets: the seed's CelebA architectures (case1, case2), _MNIST, CIFAR-10, the embedded faces, the
tiny size the tests run, and a tiny-KL VAE twin of several; `--config NAME` starts from one of them."""

from __future__ import annotations

import dataclasses

from ae_jax.config.schema import (
    Config,
    DataConfig,
    DistributionConfig,
    GeneratorsConfig,
    JudgeConfig,
    ModelConfig,
    TrainConfig,
)


def _arch(enc_filters, enc_kernels, dec_filters, dec_kernels, strides=2, **model) -> ModelConfig:
    """A model from its layers' filters and kernels; `strides` one int for every layer or (encoder, decoder)."""
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


def _tiny_kl(config: Config) -> Config:
    """The preset's VAE twin, <name>_vae_tiny_kl: variational, with a KL weight of 1e-6."""
    model = dataclasses.replace(config.model, variational=True, kl_weight=1e-6)
    return dataclasses.replace(config, name=f"{config.name}_vae_tiny_kl", model=model)


_CELEBA = DataConfig(name="celeba", image_size=96)
_FACES_DATA = DataConfig(name="faces", image_size=32, num_images=4096)
# The posts' Keras initialisation (glorot_uniform kernels, zero biases): their latent widths depend on it.
_CASE1_MODEL = _arch((32, 64, 128, 256), (3, 3, 3, 3), (128, 64, 32, 3), (3, 3, 3, 3), z_dim=256, init="keras")
_CASE2_MODEL = _arch((64, 64, 128, 128), (5, 5, 3, 3), (128, 64, 64, 3), (3, 3, 5, 5), z_dim=256, init="keras")
_MNIST_STRIDES = ((1, 2, 2, 1), (1, 2, 2, 1))  # 28 -> 28 -> 14 -> 7 -> 7
_MNIST_MODEL = _arch((32, 64, 64, 64), (3, 3, 3, 3), (64, 64, 32, 1), (3, 3, 3, 3), _MNIST_STRIDES, z_dim=2)
_FACES_MODEL = _arch((32, 64, 64), (3, 3, 3), (64, 32, 3), (3, 3, 3), z_dim=32)

_CASE1 = Config(name="case1", data=_CELEBA, model=_CASE1_MODEL)
_CASE2 = Config(name="case2", data=_CELEBA, model=_CASE2_MODEL)
_MNIST = Config(name="mnist", data=DataConfig(name="mnist", image_size=28), model=_MNIST_MODEL)
_FASHION_MNIST = Config(name="fashion_mnist", data=DataConfig(name="fashion_mnist", image_size=28), model=_MNIST_MODEL)
_CIFAR10 = Config(name="cifar10", data=DataConfig(name="cifar10", image_size=32), model=_FACES_MODEL)
_FACES = Config(name="faces", data=_FACES_DATA, model=_FACES_MODEL)
# Seconds instead of minutes: the tests, `ae-jax demo --quick` and the smoke studies all run this size.
_TINY = Config(
    name="tiny",
    data=DataConfig(name="faces", image_size=16, num_images=96),
    model=_arch((8, 16), (3, 3), (8, 3), (3, 3), z_dim=4),
    train=TrainConfig(epochs=1, batch_size=16, eval_images=32, grid_images=4, learning_rate=3e-3),
    distribution=DistributionConfig(tsne_iterations=30, tsne_exaggeration_iterations=20),
    generators=GeneratorsConfig(n=500),
    judge=JudgeConfig(epochs=1),
)

PRESETS: dict[str, Config] = {
    preset.name: preset
    for preset in (
        _CASE1,
        _tiny_kl(_CASE1),
        _CASE2,
        _tiny_kl(_CASE2),
        _MNIST,
        _FASHION_MNIST,
        _CIFAR10,
        _FACES,
        _tiny_kl(_FACES),
        _TINY,
        _tiny_kl(_TINY),
    )
}
