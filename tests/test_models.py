import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import config as C
from ae_jax.model import models as M
from ae_jax.train.loop import image_shape


def _shapes(name, **model_overrides):
    config = C.PRESETS[name]
    model = M.build_model(config.model.__class__(**{**config.model.__dict__, **model_overrides}), image_shape(config))
    shape = image_shape(config)
    params = jax.eval_shape(lambda: M.init_params(model, jax.random.key(0)))
    noise = jnp.zeros((2, model.config.z_dim))
    out = jax.eval_shape(lambda p: model.apply({"params": p}, jnp.zeros((2, *shape)), noise), params)
    return config, shape, out


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_every_preset_maps_images_to_z_and_back(name):
    config, shape, out = _shapes(name)
    assert out["logits"].shape == (2, *shape)
    assert out["mean"].shape == (2, config.model.z_dim)
    assert (out["log_var"] is not None) == config.model.variational


@pytest.mark.parametrize("act", ["relu", "selu", "leaky_relu"])
def test_activations_and_flax_transpose(act):
    _, shape, out = _shapes("mnist", act=act, conv_impl="flax")
    assert out["logits"].shape == (2, *shape)


def test_matmul_and_flax_models_agree_on_the_same_params():
    config = C.load("faces", ["model.conv_impl=matmul"])
    shape = image_shape(config)
    fast = M.build_model(config.model, shape)
    stock = M.build_model(config.model.__class__(**{**config.model.__dict__, "conv_impl": "flax"}), shape)
    params = M.init_params(fast, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, *shape))
    np.testing.assert_allclose(
        fast.apply({"params": params}, x)["logits"], stock.apply({"params": params}, x)["logits"], rtol=1e-4, atol=1e-4
    )


def test_vae_encode_returns_the_mean_and_sampling_needs_noise():
    config = C.load("faces_vae_tiny_kl")
    model = M.build_model(config.model, image_shape(config))
    params = M.init_params(model, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (4, *image_shape(config)))
    out = model.apply({"params": params}, x, jax.random.normal(jax.random.key(2), (4, config.model.z_dim)))
    z = model.apply({"params": params}, x, method=lambda m, x: m.encode(x))
    np.testing.assert_allclose(z, out["mean"], rtol=1e-6)
    assert not np.allclose(out["z"], out["mean"])
    decoded = model.apply({"params": params}, z, method=lambda m, z: m.decode(z))
    assert decoded.shape == x.shape and float(decoded.min()) >= 0 and float(decoded.max()) <= 1


def test_wrong_input_shape_is_a_clear_error():
    config = C.load("faces")
    model = M.build_model(config.model, image_shape(config))
    params = M.init_params(model, jax.random.key(0))
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 32, 32, 3\)"):
        model.apply({"params": params}, jnp.zeros((1, 28, 28, 3)))


def test_losses_match_direct_formulas():
    logits = jax.random.normal(jax.random.key(0), (3, 4, 4, 1)) * 3
    targets = jax.random.uniform(jax.random.key(1), (3, 4, 4, 1))
    p = jax.nn.sigmoid(logits)
    bce = -(targets * jnp.log(p) + (1 - targets) * jnp.log(1 - p)).reshape(3, -1).sum(-1)
    np.testing.assert_allclose(M.reconstruction_loss(logits, targets, "bce"), bce, rtol=1e-5)
    np.testing.assert_allclose(
        M.reconstruction_loss(logits, targets, "mse"), ((p - targets) ** 2).reshape(3, -1).sum(-1), rtol=1e-5
    )
    mean, log_var = jnp.array([[0.0, 1.0]]), jnp.array([[0.0, np.log(4.0)]])
    # KL(N(1, 4) || N(0, 1)) = 0.5 * (4 + 1 - 1 - log 4)
    np.testing.assert_allclose(M.kl_divergence(mean, log_var), [0.5 * (4 + 1 - 1 - np.log(4.0))], rtol=1e-6)


def test_keras_init_draws_glorot_uniform_kernels_and_zero_biases():
    import math

    from ae_jax.model.models import build_model, init_params

    for impl in ("matmul", "flax"):
        config = C.load("tiny", ["model.init=keras", f"model.conv_impl={impl}"])
        params = init_params(build_model(config.model, (16, 16, 3)), jax.random.key(0))
        kernel = np.asarray(params["encoder"]["encoder_conv_1"]["kernel"])  # (3, 3, 8, 16)
        limit = math.sqrt(6 / (9 * 8 + 9 * 16))
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit  # uniform up to the limit
        assert not np.asarray(params["encoder"]["encoder_conv_1"]["bias"]).any()
        flax_kernel = init_params(build_model(C.load("tiny").model, (16, 16, 3)), jax.random.key(0))
        assert not np.allclose(np.asarray(flax_kernel["encoder"]["encoder_conv_1"]["kernel"]), kernel)
