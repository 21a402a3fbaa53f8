"""Conv encoder/decoder configured like the seed's Keras class, as a plain AE or a VAE.

Encoder: Conv stack (`encoder_conv_*`) -> flatten -> Dense(z_dim) (a VAE adds a Dense for log-variance).
Decoder: Dense to the encoder's last feature-map shape -> ConvTranspose stack (`decoder_conv_t_*`),
the last layer with the image's channels and a sigmoid.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.config import ModelConfig, feature_map_sizes
from ae_jax.model.layers import accumulating_dot, make_conv

ACTIVATIONS = {"leaky_relu": nn.leaky_relu, "relu": nn.relu, "selu": nn.selu}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Kernel initialisers (biases start at zero in both): Flax's default, or the seed's Keras layers' default.
KERNEL_INITS = {"flax": nn.initializers.lecun_normal(), "keras": nn.initializers.glorot_uniform()}


class Encoder(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray | None]:
        """Images (B, H, W, C) in [0, 1] -> (mean, log_var); log_var is None for a plain AE."""
        c, act, dtype = self.config, ACTIVATIONS[self.config.act], DTYPES[self.config.dtype]
        for i, (f, k, s) in enumerate(zip(c.encoder_conv_filters, c.encoder_conv_kernel_size, c.encoder_conv_strides)):
            x = act(
                make_conv(
                    f,
                    k,
                    s,
                    c.encoder_conv_padding.upper(),
                    impl=c.conv_impl,
                    dtype=dtype,
                    name=f"encoder_conv_{i}",
                    kernel_init=KERNEL_INITS[c.init],
                )(x)
            )
        x = x.reshape(x.shape[0], -1)
        dense = functools.partial(nn.Dense, dtype=dtype, kernel_init=KERNEL_INITS[c.init], dot_general=accumulating_dot)
        mean = dense(c.z_dim, name="mu")(x).astype(jnp.float32)
        log_var = dense(c.z_dim, name="log_var")(x).astype(jnp.float32) if c.variational else None
        return mean, log_var


class Decoder(nn.Module):
    config: ModelConfig
    image_shape: tuple[int, int, int]

    @nn.compact
    def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
        """z (B, z_dim) -> float32 logits (B, H, W, C); the sigmoid is applied by the caller or the loss."""
        c, act, dtype = self.config, ACTIVATIONS[self.config.act], DTYPES[self.config.dtype]
        side = feature_map_sizes(
            self.image_shape[0], c.encoder_conv_strides, c.encoder_conv_kernel_size, c.encoder_conv_padding
        )[-1]
        x = nn.Dense(
            side * side * c.encoder_conv_filters[-1],
            dtype=dtype,
            kernel_init=KERNEL_INITS[c.init],
            dot_general=accumulating_dot,
            name="decoder_input",
        )(z)
        x = x.reshape(z.shape[0], side, side, c.encoder_conv_filters[-1])
        n = len(c.decoder_conv_t_filters)
        for i, (f, k, s) in enumerate(
            zip(c.decoder_conv_t_filters, c.decoder_conv_t_kernel_size, c.decoder_conv_t_strides)
        ):
            x = make_conv(
                f,
                k,
                s,
                c.decoder_conv_t_padding.upper(),
                transpose=True,
                impl=c.conv_impl,
                dtype=dtype,
                name=f"decoder_conv_t_{i}",
                kernel_init=KERNEL_INITS[c.init],
            )(x)
            if i < n - 1:
                x = act(x)
        return x.astype(jnp.float32)


class Autoencoder(nn.Module):
    """AE (config.variational False) or VAE; `__call__` returns logits and the latent statistics."""

    config: ModelConfig
    image_shape: tuple[int, int, int]

    def setup(self):
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config, self.image_shape)

    def _check_input(self, x: jnp.ndarray) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(
                f"expected images of shape (batch, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )

    def __call__(self, x: jnp.ndarray, noise: jnp.ndarray | None = None) -> dict[str, Any]:
        """Encode, take z (a VAE's reparameterised draw when given standard normal `noise` of z's shape, drawn
        by the caller so that models trained together draw what each would alone; the mean otherwise), decode."""
        self._check_input(x)
        mean, log_var = self.encoder(x)
        z = mean
        if log_var is not None and noise is not None:
            z = mean + jnp.exp(0.5 * log_var) * noise
        return {"logits": self.decoder(z), "mean": mean, "log_var": log_var, "z": z}

    def encode(self, x: jnp.ndarray) -> jnp.ndarray:
        """The z-point of each image: the AE's code or the VAE's posterior mean."""
        self._check_input(x)
        return self.encoder(x)[0]

    def decode(self, z: jnp.ndarray) -> jnp.ndarray:
        """Images in [0, 1] decoded from z-points."""
        return jax.nn.sigmoid(self.decoder(z))


def build_model(config: ModelConfig, image_shape: tuple[int, int, int]) -> Autoencoder:
    return Autoencoder(config, tuple(image_shape))


def init_params(model: Autoencoder, key: jax.Array) -> Any:
    return model.init(key, jnp.zeros((1, *model.image_shape), jnp.float32))["params"]


def reconstruction_loss(logits: jnp.ndarray, targets: jnp.ndarray, kind: str) -> jnp.ndarray:
    """Per-image reconstruction loss summed over pixels: BCE on logits (stable) or squared error."""
    if kind == "bce":
        per_pixel = jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    else:
        per_pixel = jnp.square(jax.nn.sigmoid(logits) - targets)
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(-1)


def kl_divergence(mean: jnp.ndarray, log_var: jnp.ndarray) -> jnp.ndarray:
    """KL(N(mean, exp(log_var)) || N(0, I)) per image, in nats summed over z components."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)
