"""Fast convolution layers with the parameters and outputs of their stock Flax twins.

XLA:CPU computes the kernel gradient of a strided `lax.conv_transpose` (an input-dilated convolution)
20-50x slower than a plain convolution. `SubPixelConvTranspose` computes the same function as
`nn.ConvTranspose` by phase decomposition: one stride-1 convolution of the undilated input with a
kernel holding all stride**2 output phases, then depth-to-space. Its parameters are the very
`kernel` (k, k, in, out) and `bias` of `nn.ConvTranspose`, so checkpoints are interchangeable.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax


def conv_transpose_padding(k: int, s: int, padding: str) -> tuple[int, int]:
    """Padding of the input-dilated input that `lax.conv_transpose` uses (its own convention)."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_lo = k - 1 if s > k - 1 else math.ceil(pad_len / 2)
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        pad_lo = k - 1
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return pad_lo, pad_len - pad_lo


def _phase_taps(k: int, s: int, pad_lo: int) -> tuple[np.ndarray, int]:
    """taps[w, r] = kernel tap feeding output phase r from input offset w + d_min (-1: none)."""
    d_min = -(pad_lo // s) if pad_lo % s == 0 else -(pad_lo // s) - 1  # floor(-pad_lo / s)
    d_max = (s - 1 + k - 1 - pad_lo) // s
    taps = np.full((d_max - d_min + 1, s), -1)
    for w in range(taps.shape[0]):
        for r in range(s):
            t = s * (w + d_min) + pad_lo - r
            if 0 <= t < k:
                taps[w, r] = t
    return taps, d_min


def phase_kernel(kernel: jnp.ndarray, stride: int, pad_lo: int) -> tuple[jnp.ndarray, int]:
    """Rearrange a (k, k, in, out) transposed-conv kernel into a (W, W, in, s*s*out) stride-1 kernel."""
    k, _, c_in, c_out = kernel.shape
    taps, d_min = _phase_taps(k, stride, pad_lo)
    w = taps.shape[0]
    index, valid = np.maximum(taps, 0), taps >= 0
    # (W, s, W, s, in, out): rows from taps along height, then along width.
    gathered = kernel[index[:, :, None, None], index[None, None, :, :]]
    mask = (valid[:, :, None, None] & valid[None, None, :, :]).astype(kernel.dtype)
    gathered = gathered * mask[..., None, None]
    return gathered.transpose(0, 2, 4, 1, 3, 5).reshape(w, w, c_in, stride * stride * c_out), d_min


def subpixel_conv_transpose(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: str) -> jnp.ndarray:
    """Equals `lax.conv_transpose(x, kernel, (s, s), padding)` for NHWC x and HWIO kernel."""
    n, h, w_in, _ = x.shape
    k, c_out, s = kernel.shape[0], kernel.shape[-1], stride
    pad_lo, pad_hi = conv_transpose_padding(k, s, padding)
    out_h, out_w = (h - 1) * s + 1 + pad_lo + pad_hi - k + 1, (w_in - 1) * s + 1 + pad_lo + pad_hi - k + 1
    big_kernel, d_min = phase_kernel(kernel, s, pad_lo)
    width = big_kernel.shape[0]
    m_h, m_w = -(-out_h // s), -(-out_w // s)
    pads = [(-d_min, m - 1 + width + d_min - size) for m, size in ((m_h, h), (m_w, w_in))]
    y = lax.conv_general_dilated(x, big_kernel, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = y.reshape(n, m_h, m_w, s, s, c_out).transpose(0, 1, 3, 2, 4, 5).reshape(n, m_h * s, m_w * s, c_out)
    return y[:, :out_h, :out_w]


class SubPixelConvTranspose(nn.Module):
    """Drop-in for `nn.ConvTranspose(features, (k, k), (s, s), padding)`: same params, same outputs."""

    features: int
    kernel_size: int
    stride: int
    padding: str = "SAME"
    dtype: jnp.dtype | None = None
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.stride == 1:
            y = lax.conv_transpose(x, kernel, (1, 1), self.padding)
        else:
            y = subpixel_conv_transpose(x, kernel, self.stride, self.padding)
        return y + bias
