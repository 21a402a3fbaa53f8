"""MatmulConv computes what nn.Conv / nn.ConvTranspose compute, with the same parameters, in every mode."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ae_jax.model import layers

# (input size, kernel, stride, padding): odd/even sizes, kernels smaller than, equal to and larger than the stride.
CASES = [
    (6, 3, 2, "SAME"),
    (5, 5, 2, "SAME"),
    (7, 3, 2, "VALID"),
    (4, 2, 2, "SAME"),
    (4, 4, 2, "VALID"),
    (5, 3, 3, "SAME"),
    (6, 1, 2, "SAME"),
    (6, 3, 1, "SAME"),
    (9, 4, 3, "VALID"),
]


def _twins(features, k, s, padding, transpose):
    stock = (nn.ConvTranspose if transpose else nn.Conv)(features, (k, k), (s, s), padding=padding)
    return stock, layers.MatmulConv(features, k, s, padding, transpose=transpose)


def _run_fast(fn):
    """Run the argument-less `fn` jitted with LLVM at -O0: same numerics, 4x quicker to compile."""
    return jax.jit(fn).lower().compile({"xla_backend_optimization_level": 0})()


# Input channels: an image's few (the convolution contracts its patches as a 2-d matrix) and more than
# layers.THIN_INPUT_CHANNELS (a 4-d contraction).
@pytest.mark.parametrize("channels", [3, layers.THIN_INPUT_CHANNELS + 2])
@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "h{}k{}s{}{}".format(*c))
def test_outputs_and_gradients_match_flax(case, transpose, channels):
    size, k, s, padding = case
    stock, mine = _twins(4, k, s, padding, transpose)
    shape = (2, size, size + 1, channels)  # non-square: rows and columns differ
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    assert jax.eval_shape(mine.init, jax.random.key(1), x) == jax.eval_shape(stock.init, jax.random.key(1), x)

    def outputs_and_gradients():  # shared nn.Conv params with a non-zero bias; sin: a cotangent per pixel
        x = jax.random.normal(jax.random.key(0), shape)
        params = stock.init(jax.random.key(1), x)
        params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
        return [
            (m.apply(params, x), jax.grad(lambda p, x, m=m: jnp.sum(jnp.sin(m.apply(p, x))), argnums=(0, 1))(params, x))
            for m in (stock, mine)
        ]

    (expected, grads_expected), (got, grads_got) = _run_fast(outputs_and_gradients)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    for g, e in zip(jax.tree.leaves(grads_got), jax.tree.leaves(grads_expected)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("case", CASES[:5], ids=lambda c: "h{}k{}s{}{}".format(*c))
def test_gather_and_overlap_add_are_adjoint(case):
    """<gather(x), z> = <x, overlap_add(z)> for random x and z: one is the transpose of the other."""
    size, k, s, padding = case
    rows, cols = layers.conv_taps(size, k, s, padding), layers.conv_taps(size + 2, k, s, padding)

    def inner_products():
        x = jax.random.normal(jax.random.key(0), (2, size, size + 2, 3))
        z = jax.random.normal(jax.random.key(1), (2, rows.grid, cols.grid, k * k * 3))
        patches, back = layers.gather_taps(x, rows, cols), layers.overlap_add(z, rows, cols)
        assert patches.shape == z.shape and back.shape == x.shape
        return jnp.vdot(patches, z), jnp.vdot(x, back)

    forward, adjoint = _run_fast(inner_products)
    np.testing.assert_allclose(forward, adjoint, rtol=1e-5)


@pytest.mark.parametrize("forward", ["gather_taps", "overlap_add"])
def test_each_primitive_transposes_to_the_other_and_maps_under_vmap(forward):
    """gather_taps' reverse-mode derivative is overlap_add and vice versa (no scatter, and no concatenate of
    slices, in the pullback's program), and vmap over a leading axis equals applying it to each slice."""
    rows, cols = layers.conv_taps(6, 3, 2, "SAME"), layers.conv_taps(7, 3, 2, "SAME")
    image = jax.random.normal(jax.random.key(0), (3, 2, 6, 7, 4))
    patches = jax.random.normal(jax.random.key(1), (3, 2, rows.grid, cols.grid, 9 * 4))
    other = {"gather_taps": "overlap_add", "overlap_add": "gather_taps"}[forward]
    op, adjoint = getattr(layers, forward), getattr(layers, other)
    x, ct = (image, patches) if forward == "gather_taps" else (patches, image)

    def pullback(x):
        return jax.vjp(lambda x: op(x, rows, cols), x)[1](ct[0])[0]

    program = str(jax.make_jaxpr(pullback)(x[0]))
    assert "scatter" not in program and "concatenate" not in program
    np.testing.assert_allclose(pullback(x[0]), adjoint(ct[0], rows, cols), rtol=1e-6)
    mapped = jax.vmap(lambda x: op(x, rows, cols), in_axes=1, out_axes=1)(x.swapaxes(0, 1))
    np.testing.assert_array_equal(mapped.swapaxes(0, 1), [op(xi, rows, cols) for xi in x])


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "conv_transpose"])
def test_forward_mode_matches_flax(transpose):
    """jvp works (no custom_vjp, e.g. for decoder Jacobians) and equals the stock layer's, params and input."""
    stock, mine = _twins(4, 3, 2, "SAME", transpose)

    def jvps():
        x, x_dot = jax.random.normal(jax.random.key(0), (2, 2, 5, 6, 3))
        params = stock.init(jax.random.key(1), x)
        params_dot = jax.tree.map(lambda p: jax.random.normal(jax.random.key(2), p.shape), params)
        return [jax.jvp(m.apply, (params, x), (params_dot, x_dot)) for m in (stock, mine)]

    (expected, expected_dot), (got, got_dot) = _run_fast(jvps)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_dot, expected_dot, rtol=1e-4, atol=1e-4)


# (lhs, rhs, contracting): the model's three matmuls (4-d patches by [out, in], 2-d by [out, in], 2-d by [in, out])
# and a two-axis contraction whose axes come in another order on each side.
DOTS = [
    ((2, 3, 4, 6), (5, 6), ((3,), (1,))),
    ((7, 6), (5, 6), ((1,), (1,))),
    ((7, 6), (6, 5), ((1,), (0,))),
    ((2, 3, 4), (4, 5, 3), ((1, 2), (2, 0))),
]


@pytest.mark.parametrize("lhs_shape, rhs_shape, contracting", DOTS, ids=["patches", "thin", "dense", "two_axes"])
def test_accumulating_dot_is_dot_general_in_every_mode(lhs_shape, rhs_shape, contracting):
    """In float32: the product, both gradients, jvp and vmap over a stacked rhs (arms) equal lax.dot_general's."""
    dims = (contracting, ((), ()))
    lhs, rhs = jax.random.normal(jax.random.key(0), lhs_shape), jax.random.normal(jax.random.key(1), rhs_shape)

    def every_mode(dot):
        out, pullback = jax.vjp(lambda a, b: dot(a, b, dims), lhs, rhs)
        cotangent = jnp.sin(jnp.arange(out.size, dtype=jnp.float32)).reshape(out.shape)
        tangent = jax.jvp(lambda a, b: dot(a, b, dims), (lhs, rhs), (jnp.cos(lhs), jnp.cos(rhs)))[1]
        mapped = jax.vmap(lambda b: dot(lhs, b, dims))(jnp.stack([rhs, 2 * rhs]))
        return out, pullback(cotangent), tangent, mapped

    got, expected = every_mode(layers.accumulating_dot), every_mode(lax.dot_general)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="batch dimensions"):
        layers.accumulating_dot(lhs, lhs, ((contracting[0], contracting[0]), ((0,), (0,))))


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "conv_transpose"])
def test_bfloat16_layer_multiplies_in_bfloat16_and_sums_in_float32(transpose):
    """A bfloat16 MatmulConv's gradient program: every matmul bf16 x bf16 -> f32 (XLA:CPU runs bf16 -> bf16 ones as
    f32 matmuls between converts), every add (the overlap-add, forward or in the gradient) and sum (bias gradient) in
    float32."""
    mine = layers.MatmulConv(8, 3, 2, transpose=transpose, dtype=jnp.bfloat16)
    x = jnp.ones((2, 6, 6, 8))
    params = mine.init(jax.random.key(0), x)
    loss = jax.grad(lambda p, x: jnp.sin(mine.apply(p, x).astype(jnp.float32)).sum(), argnums=(0, 1))
    program = jax.jit(loss).lower(params, x).as_text()
    dots = re.findall(r"stablehlo.dot_general .*: \((tensor<\S+>), (tensor<\S+>)\) -> (tensor<\S+>)", program)
    types = {(a[-6:], b[-6:], out[-5:]) for a, b, out in dots}
    assert len(dots) == 3 and types == {("xbf16>", "xbf16>", "xf32>")}, dots  # forward, input and kernel gradients
    adds = re.findall(r"stablehlo.add %\S+, %\S+ : (tensor<\S+>)", program)
    sums = re.findall(r"applies stablehlo.add across dimensions = \[[^\]]*\] : \((tensor<\S+>),", program)
    assert sums and all("f32" in t for t in sums), sums
    assert any("f32" in t for t in adds) and not any("bf16" in t for t in adds), adds  # the overlap-add either way


def test_compute_dtype_is_respected():
    mine = layers.MatmulConv(4, 3, 2, dtype=jnp.bfloat16)
    x = jnp.ones((1, 6, 6, 3))
    params = jax.eval_shape(mine.init, jax.random.key(0), x)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    assert jax.eval_shape(mine.apply, params, x).dtype == jnp.bfloat16


@pytest.mark.parametrize("transpose", [False, True])
def test_bad_padding_is_refused_by_name(transpose):
    mine = layers.MatmulConv(4, 3, 2, padding="CIRCULAR", transpose=transpose)
    with pytest.raises(ValueError, match="CIRCULAR"):
        jax.eval_shape(mine.init, jax.random.key(0), jnp.ones((1, 6, 6, 3)))


def test_kernel_larger_than_valid_input_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        jax.eval_shape(layers.MatmulConv(4, 5, 1, padding="VALID").init, jax.random.key(0), jnp.ones((1, 3, 3, 3)))


def test_make_conv_picks_the_implementation():
    auto = layers.make_conv(4, 3, 2, "SAME", transpose=True)
    assert isinstance(auto, layers.MatmulConv if jax.default_backend() == "cpu" else nn.ConvTranspose)
    assert isinstance(layers.make_conv(4, 3, 2, "SAME", impl="flax"), nn.Conv)
    assert isinstance(layers.make_conv(4, 3, 2, "SAME", transpose=True, impl="flax"), nn.ConvTranspose)
    with pytest.raises(ValueError, match="cudnn"):
        layers.make_conv(4, 3, 2, "SAME", impl="cudnn")
