import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ae_jax import config as C


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_presets_validate(name):
    C.validate(C.PRESETS[name]())


def test_case_presets_match_the_seed():
    case1, case2 = C.PRESETS["case1"]().model, C.PRESETS["case2"]().model
    assert case1.encoder_conv_filters == (32, 64, 128, 256) and case1.decoder_conv_t_filters == (128, 64, 32, 3)
    assert case2.encoder_conv_kernel_size == (5, 5, 3, 3) and case2.decoder_conv_t_kernel_size == (3, 3, 5, 5)
    assert case1.z_dim == case2.z_dim == 256
    tiny = C.PRESETS["case1_vae_tiny_kl"]().model
    assert tiny.variational and 0 < tiny.kl_weight < 1e-4


def test_overrides_are_typed():
    c = C.load(
        "case1",
        [
            "model.z_dim=200",
            "data.dir=/x",
            "model.encoder_conv_filters=16,32,64,128",
            "model.variational=true",
            "model.kl_weight=1e-3",
            "train.learning_rate=0.01",
        ],
    )
    assert c.model.z_dim == 200 and c.data.dir == "/x" and c.model.encoder_conv_filters == (16, 32, 64, 128)
    assert c.model.variational is True and c.model.kl_weight == 1e-3 and c.train.learning_rate == 0.01


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.zdim=3", "model.zdim"),
        ("nonsense.x=1", "nonsense"),
        ("model.z_dim=0", "model.z_dim"),
        ("model.z_dim=abc", "model.z_dim"),
        ("model.z_dim=2.5", "model.z_dim"),
        ("model.kl_weight=-1", "model.kl_weight"),
        ("model.act=tanh", "model.act"),
        ("data.image_size=100", "model.encoder_conv_strides"),
        ("model.encoder_conv_kernel_size=3,3", "model.encoder_conv_kernel_size"),
        ("data.name=mnist", "model.decoder_conv_t_filters"),
        ("train.batch_size=0", "train.batch_size"),
        ("model.variational=maybe", "model.variational"),
        ("z_dim", "key=value"),
    ],
)
def test_bad_values_are_refused_naming_the_key(override, key):
    with pytest.raises(C.ConfigError, match=key.replace(".", r"\.")):
        C.load("case1", [override])


def test_config_file_with_base_and_round_trip(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"base": "mnist", "model": {"z_dim": 10}, "train": {"epochs": 2}}))
    c = C.load(str(path))
    assert c.data.name == "mnist" and c.model.z_dim == 10 and c.train.epochs == 2
    C.save(c, str(tmp_path / "resolved.json"))
    assert C.load(str(tmp_path / "resolved.json")) == c


def test_unknown_preset_and_bad_json(tmp_path):
    with pytest.raises(C.ConfigError, match="neither a preset"):
        C.load("nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(C.ConfigError, match="not valid JSON"):
        C.load(str(bad))


@given(z_dim=st.integers(-5, 600), kl=st.floats(-1, 1, allow_nan=False))
def test_z_dim_and_kl_weight_bounds(z_dim, kl):
    overrides = [f"model.z_dim={z_dim}", f"model.kl_weight={kl!r}", "model.variational=true"]
    if z_dim > 0 and kl >= 0:
        c = C.load("faces", overrides)
        assert c.model.z_dim == z_dim and c.model.kl_weight == kl
    else:
        with pytest.raises(C.ConfigError):
            C.load("faces", overrides)


@given(size=st.integers(4, 130), n_layers=st.integers(1, 4))
def test_stride_divisibility_is_checked_before_work(size, n_layers):
    filters = ",".join(["8"] * n_layers)
    overrides = [
        f"data.image_size={size}",
        f"model.encoder_conv_filters={filters}",
        f"model.encoder_conv_kernel_size={','.join(['3'] * n_layers)}",
        f"model.encoder_conv_strides={','.join(['2'] * n_layers)}",
        f"model.decoder_conv_t_filters={','.join(['8'] * (n_layers - 1) + ['3'])}",
        f"model.decoder_conv_t_kernel_size={','.join(['3'] * n_layers)}",
        f"model.decoder_conv_t_strides={','.join(['2'] * n_layers)}",
    ]
    if size % 2**n_layers == 0:
        assert C.load("faces", overrides).data.image_size == size
    else:
        with pytest.raises(C.ConfigError, match="divide"):
            C.load("faces", overrides)
