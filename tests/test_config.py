import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ae_jax import config as C


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_presets_validate(name):
    C.validate(C.PRESETS[name])


def test_case_presets_match_the_seed():
    case1, case2 = C.PRESETS["case1"].model, C.PRESETS["case2"].model
    assert case1.encoder_conv_filters == (32, 64, 128, 256) and case1.decoder_conv_t_filters == (128, 64, 32, 3)
    assert case2.encoder_conv_kernel_size == (5, 5, 3, 3) and case2.decoder_conv_t_kernel_size == (3, 3, 5, 5)
    assert case1.z_dim == case2.z_dim == 256
    tiny = C.PRESETS["case1_vae_tiny_kl"].model
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
        ("distribution.max_hist_bins=0", "distribution.max_hist_bins"),
        ("distribution.max_hist_bins=1.5", "distribution.max_hist_bins"),
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


# The generator specs as they were written before specs were typed: config.json files and stage keys hold these.
OLD_DEFAULT_SPECS = [
    "uniform bound=1",
    "uniform bound=1.5",
    "uniform bound=2",
    "uniform bound=3",
    "uniform bound=5",
    "uniform bound=10",
    "uniform bound=12",
    "isotropic mu=0 sigma=1",
    "diagonal",
    "full",
    "mixture n_components=10",
]


def test_generator_specs_are_typed_and_write_their_old_text(tmp_path):
    specs = C.Config().generators.specs
    assert all(isinstance(s, C.GeneratorSpec) for s in specs)
    assert C.to_dict(C.Config())["generators"]["specs"] == tuple(OLD_DEFAULT_SPECS)
    assert [C.GeneratorSpec.parse(text) for text in OLD_DEFAULT_SPECS] == list(specs)
    assert C.GeneratorSpec.parse("mixture n_components=3 covariance=diag") == C.GeneratorSpec.of(
        "mixture", n_components=3, covariance="diag"
    )
    old = tmp_path / "config.json"  # a config.json written before specs were typed
    old.write_text(json.dumps({**C.to_dict(C.load("tiny")), "generators": {"specs": ["uniform bound=0.5", "full"]}}))
    loaded = C.load(str(old))
    assert loaded.generators.specs == (C.GeneratorSpec.of("uniform", bound=0.5), C.GeneratorSpec("full"))
    assert C.to_dict(loaded)["generators"]["specs"] == ("uniform bound=0.5", "full")


@pytest.mark.parametrize(
    "text, message",
    [
        ("magic bound=1", "generators.specs 'magic bound=1': unknown sampler 'magic'; allowed: grid, uniform"),
        ("uniform width=1", "generators.specs 'uniform width=1': unknown parameter.* width .*allowed: bound"),
        ("uniform bound", "generators.specs 'uniform bound': 'bound' must look like key=value"),
    ],
)
def test_bad_generator_specs_are_refused_at_load_naming_the_spec(text, message):
    with pytest.raises(C.ConfigError, match=message):
        C.load("tiny", [f"generators.specs=diagonal,{text}"])
    with pytest.raises(C.ConfigError, match=message):
        C.load("tiny", updates={"generators.specs": (text,)})


def test_typed_updates_equal_their_text_and_refuse_unknown_keys():
    text = C.load("tiny", ["generators.specs=uniform bound=1.5,diagonal", "model.z_dim=8", "distribution.tsne=true"])
    specs = (C.GeneratorSpec.of("uniform", bound=1.5), C.GeneratorSpec("diagonal"))
    typed = C.load("tiny", updates={"generators.specs": specs, "model.z_dim": 8, "distribution.tsne": True})
    assert typed == text
    assert C.load("tiny", ["model.z_dim=6"], {"model.z_dim": 8}).model.z_dim == 6  # --set comes last
    with pytest.raises(C.ConfigError, match="unknown config key 'model.zdim'"):
        C.load("tiny", updates={"model.zdim": 8})
    with pytest.raises(C.ConfigError, match="model.z_dim: 2.5 is not a valid int"):
        C.load("tiny", updates={"model.z_dim": 2.5})


@pytest.mark.parametrize(
    "override, hint",
    [
        ("epochs=1", "(did you mean 'train.epochs' or 'judge.epochs'?)"),
        ("train.epoch=1", "(did you mean 'train.epochs'?)"),
        ("model.zdim=3", "(did you mean 'model.z_dim'?)"),
        ("trian.epochs=1", "(did you mean 'train'?)"),
    ],
)
def test_an_unknown_key_suggests_the_close_ones(override, hint):
    with pytest.raises(C.ConfigError, match=re.escape(hint)):
        C.load("tiny", [override])


def test_a_misspelt_preset_is_suggested(tmp_path):
    with pytest.raises(C.ConfigError, match=re.escape("(did you mean 'tiny'?)")):
        C.load("tiyn")
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"base": "fases"}))
    with pytest.raises(C.ConfigError, match=re.escape("base 'fases' is not a preset (did you mean 'faces'")):
        C.load(str(path))


def test_did_you_mean_is_empty_when_nothing_is_close():
    assert C.did_you_mean("zzz", ["demo", "filaments"]) == ""
    assert C.did_you_mean("dmeo", ["demo", "filaments"]) == " (did you mean 'demo'?)"


def test_the_posts_presets_start_from_keras_initialisation_and_flax_is_one_setting_away():
    for name in ("case1", "case2", "case1_vae_tiny_kl", "case2_vae_tiny_kl"):
        assert C.load(name).model.init == "keras"
        assert C.load(name, ["model.init=flax"]).model.init == "flax"
    assert C.load("faces").model.init == "flax"
