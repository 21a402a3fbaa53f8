"""Convolutions whose derivatives are matrix multiplies, with the parameters and outputs of their Flax twins.

XLA:CPU computes the kernel gradient of a convolution as a convolution with a huge window and a tiny output
(2-6 GFLOP/s here, 10-40x slower than a matmul of the same FLOPs), and the input gradient of a strided
convolution, like the forward pass of a transposed one, as an input-dilated convolution (slower still).
Here those are matmuls between an image's kernel taps and the flattened kernel:

- `gather_taps` copies, for each output point, the k*k input pixels its kernel taps read (im2col), as one gather;
- `overlap_add` adds each input point's k*k kernel-tap products into the output pixels they land on (col2im).

The two are exact adjoints, and each is a primitive whose transpose is the other: the gather is one pass over
its output, where autodiff would scatter-add (into the gather) or pad, slice and concatenate (into `overlap_add`,
which adds each tap as a unit-stride shifted window of one of the image's stride**2 phases). A convolution is
`gather_taps` then a matmul; a transposed one is a matmul then `overlap_add` (no multiplies by the zeros of an
input dilation), and every gradient is a matmul too. Why im2col beats XLA's own convolutions on two cores, and
what each piece costs: benchmarks/README.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

PADDINGS = ("SAME", "VALID")
CONV_IMPLS = ("auto", "matmul", "flax")
THIN_INPUT_CHANNELS = 4  # convolutions with this few input channels contract their patches as a 2-d matrix


@dataclasses.dataclass(frozen=True)
class AxisTaps:
    """Along one spatial axis, tap t of grid point p sits at image index `stride * p + offsets[t]`."""

    image: int
    grid: int
    stride: int
    offsets: tuple[int, ...]

    @property
    def shifts(self) -> list[int]:
        """Per tap, its grid shift d within its phase r: offset = stride * d + r."""
        return [o // self.stride for o in self.offsets]

    @property
    def first_shift(self) -> int:
        return min(min(self.shifts), 0)

    @property
    def phase_len(self) -> int:
        """Positions per phase in a frame starting at image index stride * first_shift and covering all taps."""
        return max(-(-self.image // self.stride), self.grid + max(self.shifts)) - self.first_shift

    def frame_pads(self) -> tuple[int, int]:
        """lax.pad (low, high) that turns the image axis into the frame (negative: crop)."""
        low = -self.stride * self.first_shift
        return low, self.stride * self.phase_len - self.image - low

    def window(self, t: int) -> tuple[int, int]:
        """Phase of tap t and the start of its grid-long window in that phase."""
        return self.offsets[t] % self.stride, self.shifts[t] - self.first_shift


def _from_phases(phases: list[list[jnp.ndarray]], rows: AxisTaps, cols: AxisTaps) -> jnp.ndarray:
    """phases[r][q] (n, Lr, Lc, c), the frame's pixels (s*i + r, s*j + q), interleaved (depth-to-space) into the
    frame, which is cropped to the image."""
    frame = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # (n, Lr, s, Lc, s, c)
    n, c = frame.shape[0], frame.shape[-1]
    frame = frame.reshape(n, rows.phase_len * rows.stride, cols.phase_len * cols.stride, c)
    (rl, rh), (cl, ch) = rows.frame_pads(), cols.frame_pads()
    return lax.pad(frame, jnp.zeros((), frame.dtype), ((0, 0, 0), (-rl, -rh, 0), (-cl, -ch, 0), (0, 0, 0)))


def _tap_count(rows: AxisTaps, cols: AxisTaps) -> int:
    return len(rows.offsets) * len(cols.offsets)


def _tap_pixels(rows: AxisTaps, cols: AxisTaps) -> tuple[np.ndarray, np.ndarray]:
    """Per tap in patch order (p, q, a, b): the flat index (row * width + col) of the pixel it reads, and whether
    that pixel lies inside the image (taps outside it read zero)."""
    r = rows.stride * np.arange(rows.grid)[:, None, None, None] + np.array(rows.offsets)[None, None, :, None]
    c = cols.stride * np.arange(cols.grid)[None, :, None, None] + np.array(cols.offsets)[None, None, None, :]
    inside = (r >= 0) & (r < rows.image) & (c >= 0) & (c < cols.image)
    return np.where(inside, r * cols.image + c, 0).reshape(-1), inside.reshape(-1)


def _gather_pixels(image: jnp.ndarray, *, rows: AxisTaps, cols: AxisTaps) -> jnp.ndarray:
    """`gather_taps` as one XLA gather of c-long pixel rows per image (one pass; slices + a concatenate make three)."""
    n, h, w, c = image.shape
    index, inside = _tap_pixels(rows, cols)

    def one_image(pixels: jnp.ndarray) -> jnp.ndarray:  # (h * w, c) -> (taps, c)
        return jnp.where(inside[:, None], pixels.at[index].get(mode="promise_in_bounds"), 0)

    return jax.vmap(one_image)(image.reshape(n, h * w, c)).reshape(n, rows.grid, cols.grid, -1)


def _add_windows(patches: jnp.ndarray, *, rows: AxisTaps, cols: AxisTaps) -> jnp.ndarray:
    """`overlap_add` as one unit-stride shifted window per tap, summed within the image's stride**2 phases in float32
    (XLA:CPU rounds every bfloat16 add to bfloat16, which made the bfloat16 sum slower than a float32 one)."""
    n, c = patches.shape[0], patches.shape[-1] // _tap_count(rows, cols)
    taps = iter(jnp.split(patches.astype(jnp.float32), _tap_count(rows, cols), axis=-1))
    terms = [[[] for _ in range(cols.stride)] for _ in range(rows.stride)]
    for a in range(len(rows.offsets)):
        r, i = rows.window(a)
        for b in range(len(cols.offsets)):
            q, j = cols.window(b)
            pads = (
                (0, 0, 0),
                (i, rows.phase_len - rows.grid - i, 0),
                (j, cols.phase_len - cols.grid - j, 0),
                (0, 0, 0),
            )
            terms[r][q].append(lax.pad(next(taps), jnp.zeros((), jnp.float32), pads))
    zeros = jnp.zeros((n, rows.phase_len, cols.phase_len, c), jnp.float32)
    sums = [[sum(t[1:], t[0]) if t else zeros for t in row] for row in terms]
    return _from_phases(sums, rows, cols).astype(patches.dtype)


def _fold_mapped_axis(primitive):
    """vmap rule of a per-image primitive: fold the mapped axis into the batch axis."""

    def batched(args, dims, **params):
        (x,), (dim,) = args, dims
        x = jnp.moveaxis(x, dim, 0)
        out = primitive.bind(x.reshape(-1, *x.shape[2:]), **params)
        return out.reshape(*x.shape[:2], *out.shape[1:]), 0

    return batched


def _define_linear(primitive, impl, out_shape, transpose):
    """Register a linear per-image primitive: implementation, shape, lowering, its transpose (another such
    primitive; its jvp is itself), vmap."""
    primitive.def_impl(impl)
    primitive.def_abstract_eval(lambda x, *, rows, cols: ShapedArray(out_shape(x.shape, rows, cols), x.dtype))
    mlir.register_lowering(primitive, mlir.lower_fun(impl, multiple_results=False))
    ad.deflinear2(primitive, lambda ct, x, *, rows, cols: [transpose.bind(ct, rows=rows, cols=cols)])
    batching.primitive_batchers[primitive] = _fold_mapped_axis(primitive)


# Primitives, not jnp functions, so that each one's transpose is the other (autodiff of a gather scatter-adds, and
# autodiff of the overlap-add's windows is pads, slices and a concatenate: three passes where a gather makes one),
# while forward mode (jvp: the same op on the tangent) keeps working, which a custom_vjp would refuse.
gather_taps_p = Primitive("gather_taps")
overlap_add_p = Primitive("overlap_add")
_define_linear(
    gather_taps_p,
    _gather_pixels,
    lambda shape, rows, cols: (shape[0], rows.grid, cols.grid, _tap_count(rows, cols) * shape[-1]),
    overlap_add_p,
)
_define_linear(
    overlap_add_p,
    _add_windows,
    lambda shape, rows, cols: (shape[0], rows.image, cols.image, shape[-1] // _tap_count(rows, cols)),
    gather_taps_p,
)


def gather_taps(image: jnp.ndarray, rows: AxisTaps, cols: AxisTaps) -> jnp.ndarray:
    """(n, H, W, c) image -> (n, P, Q, taps * c) patches (im2col), zero outside the image:

    patches[:, p, q, (a, b, :)] = image[:, stride * p + rows.offsets[a], stride * q + cols.offsets[b], :].
    """
    return gather_taps_p.bind(image, rows=rows, cols=cols)


def overlap_add(patches: jnp.ndarray, rows: AxisTaps, cols: AxisTaps) -> jnp.ndarray:
    """The adjoint of `gather_taps`: (n, P, Q, taps * c) -> (n, H, W, c), summing every tap into its pixel."""
    return overlap_add_p.bind(patches, rows=rows, cols=cols)


def conv_taps(size: int, kernel_size: int, stride: int, padding: str) -> AxisTaps:
    """Taps of a strided convolution along one axis (lax/Flax 'SAME' or 'VALID' padding)."""
    if padding == "SAME":
        out = -(-size // stride)
        low = max((out - 1) * stride + kernel_size - size, 0) // 2
    elif padding == "VALID":
        out, low = (size - kernel_size) // stride + 1, 0
    else:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if out < 1:
        raise ValueError(f"kernel {kernel_size} does not fit an input of size {size} with {padding} padding")
    return AxisTaps(image=size, grid=out, stride=stride, offsets=tuple(t - low for t in range(kernel_size)))


def conv_transpose_padding(k: int, s: int, padding: str) -> tuple[int, int]:
    """Padding of the input-dilated input that `lax.conv_transpose` uses (its own convention)."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_lo = k - 1 if s > k - 1 else math.ceil(pad_len / 2)
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        pad_lo = k - 1
    else:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return pad_lo, pad_len - pad_lo


def conv_transpose_taps(size: int, kernel_size: int, stride: int, padding: str) -> AxisTaps:
    """Taps of `lax.conv_transpose` along one axis: input point p adds tap t into output stride*p + low - t."""
    low, high = conv_transpose_padding(kernel_size, stride, padding)
    out = (size - 1) * stride + 1 + low + high - kernel_size + 1
    return AxisTaps(image=out, grid=size, stride=stride, offsets=tuple(low - t for t in range(kernel_size)))


def _accumulate(lhs: jnp.ndarray, rhs: jnp.ndarray, *, contracting) -> jnp.ndarray:
    return lax.dot_general(lhs, rhs, (contracting, ((), ())), preferred_element_type=jnp.float32).astype(lhs.dtype)


def _cotangent(g, x, y, x_contract, y_contract, x_first: bool) -> jnp.ndarray:
    """x's cotangent in the product of x and y (x its left operand if x_first): JAX's own transpose of dot_general,
    the same dot and transpose, as an `accumulating_dot`."""
    x_kept = [d for d in range(x.aval.ndim) if d not in x_contract]
    y_kept = [d for d in range(y.ndim) if d not in y_contract]
    g_of_y = range(len(x_kept), g.ndim) if x_first else range(len(y_kept))
    x_contract_by_y = [x_contract[i] for i in np.argsort(y_contract)]
    product = accumulating_dot_p.bind(g, y, contracting=(tuple(g_of_y), tuple(y_kept)))
    return product.transpose(np.argsort(x_kept + x_contract_by_y))


# A primitive, not a custom_vjp, for the reason of the two above: forward mode keeps working.
accumulating_dot_p = Primitive("accumulating_dot")
accumulating_dot_p.def_impl(_accumulate)
accumulating_dot_p.def_abstract_eval(
    lambda lhs, rhs, *, contracting: ShapedArray(
        jax.eval_shape(functools.partial(_accumulate, contracting=contracting), lhs, rhs).shape, lhs.dtype
    )
)
mlir.register_lowering(accumulating_dot_p, mlir.lower_fun(_accumulate, multiple_results=False))
ad.defbilinear(
    accumulating_dot_p,
    lambda g, lhs, rhs, *, contracting: _cotangent(g, lhs, rhs, *contracting, True),
    lambda g, lhs, rhs, *, contracting: _cotangent(g, rhs, lhs, *contracting[::-1], False),
)
batching.primitive_batchers[accumulating_dot_p] = lambda args, dims, *, contracting: (
    jax.vmap(functools.partial(_accumulate, contracting=contracting), in_axes=dims)(*args),
    0,
)


def accumulating_dot(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None) -> jnp.ndarray:
    """lax.dot_general (no batch dimensions; also Flax Dense's `dot_general`) whose product and both gradients
    accumulate in float32 and are rounded to the operands' dtype. XLA:CPU runs bfloat16 x bfloat16 -> float32 dots
    on YNNPACK's bfloat16 kernels but turns bfloat16 -> bfloat16 ones into float32 dots between converts."""
    (contracting, batch), dtype = dimension_numbers, jnp.result_type(lhs, rhs)
    if batch != ((), ()) or precision is not None or preferred_element_type not in (None, dtype):
        raise ValueError("accumulating_dot takes no batch dimensions, precision or other output dtype")
    contracting = tuple(tuple(int(d) for d in dims) for dims in contracting)
    return accumulating_dot_p.bind(lhs.astype(dtype), rhs.astype(dtype), contracting=contracting)


def matmul_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: str, transpose: bool) -> jnp.ndarray:
    """Equals lax.conv_general_dilated (transpose False) or lax.conv_transpose (True); NHWC x, HWIO kernel.

    A convolution is im2col then one matmul, a transposed one a matmul then col2im. The operand shapes decide
    how XLA:CPU runs each kernel gradient, the matmul that contracts over every pixel of the batch:
    - a convolution's kernel is an [out, (taps, in)] matrix: its gradient then copies the output gradient
      transposed and runs on YNNPACK (an (in, out) matrix got an Eigen dot 2x slower). With at most
      THIN_INPUT_CHANNELS input channels (an image's first layer) the gradient is tiny and its contraction long,
      and YNNPACK is slow at that shape: the patches are contracted as a 2-d matrix, an Eigen dot that reads
      both operands in place;
    - a transposed convolution's kernel is an [in, (taps, out)] matrix and x a 2-d matrix: its gradient is an
      Eigen dot of x and the gathered output gradient in place, neither copied.
    """
    _, h, w, c = x.shape
    k, f = kernel.shape[0], kernel.shape[-1]
    if not transpose:
        rows, cols = conv_taps(h, k, stride, padding), conv_taps(w, k, stride, padding)
        weights = kernel.transpose(3, 0, 1, 2).reshape(f, k * k * c)  # [out, (tap row, tap col, in)]
        patches = gather_taps(x, rows, cols)
        if c > THIN_INPUT_CHANNELS:
            return accumulating_dot(patches, weights, (((3,), (1,)), ((), ())))
        out = accumulating_dot(patches.reshape(-1, k * k * c), weights, (((1,), (1,)), ((), ())))
        return out.reshape(*patches.shape[:3], f)
    rows, cols = conv_transpose_taps(h, k, stride, padding), conv_transpose_taps(w, k, stride, padding)
    weights = kernel.transpose(2, 0, 1, 3).reshape(c, k * k * f)  # [in, (tap row, tap col, out)]
    taps = accumulating_dot(x.reshape(-1, c), weights, (((1,), (0,)), ((), ())))
    return overlap_add(taps.reshape(*x.shape[:3], -1), rows, cols)


class MatmulConv(nn.Module):
    """Drop-in for nn.Conv(features, (k, k), (s, s), padding), or nn.ConvTranspose with `transpose=True`.

    Same parameters (`kernel` (k, k, in, features), `bias`) and outputs, so checkpoints are interchangeable.
    """

    features: int
    kernel_size: int
    stride: int = 1
    padding: str = "SAME"
    transpose: bool = False
    dtype: jnp.dtype | None = None
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        out = matmul_conv(x, kernel, self.stride, self.padding, self.transpose)
        return (out.astype(jnp.float32) + bias).astype(out.dtype)  # the bias gradient: a float32 sum


def make_conv(
    features: int,
    kernel_size: int,
    stride: int,
    padding: str,
    *,
    transpose: bool = False,
    impl: str = "auto",
    dtype: jnp.dtype | None = None,
    name: str | None = None,
    kernel_init: nn.initializers.Initializer | None = None,
) -> nn.Module:
    """A convolution (or transposed one) layer: MatmulConv or its stock Flax twin, which share parameters.

    impl 'auto' picks MatmulConv on CPU, where XLA's convolution gradients are slow, and Flax elsewhere.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv impl must be one of {CONV_IMPLS}, got {impl!r}")
    if impl == "auto":
        impl = "matmul" if jax.default_backend() == "cpu" else "flax"
    kernel_init = kernel_init or nn.initializers.lecun_normal()  # Flax's default
    if impl == "matmul":
        return MatmulConv(
            features, kernel_size, stride, padding, transpose=transpose, dtype=dtype, kernel_init=kernel_init, name=name
        )
    stock = nn.ConvTranspose if transpose else nn.Conv
    return stock(
        features,
        (kernel_size, kernel_size),
        (stride, stride),
        padding=padding,
        dtype=dtype,
        kernel_init=kernel_init,
        name=name,
    )
