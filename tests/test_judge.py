import numpy as np
import pytest
import scipy.linalg

from ae_jax import config as C
from ae_jax.train.judge import (
    augmentation,
    frechet_distance,
    frechet_distances,
    label_task,
    load_judge,
    train_judge,
)


def _scipy_frechet(a, b):
    """The FID formula in float64 with scipy's matrix square root: the reference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)


@pytest.mark.parametrize("n, d", [(400, 6), (300, 128)])
def test_frechet_distance_matches_the_float64_scipy_formula(n, d):
    rng = np.random.default_rng(d)
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = (rng.normal(size=(n - 100, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.5).astype(np.float32)
    np.testing.assert_allclose(frechet_distance(a, b), _scipy_frechet(a, b), rtol=1e-7)


def test_frechet_distance_is_never_negative_with_fewer_points_than_features():
    rng = np.random.default_rng(0)  # float32 eigendecompositions gave FD(a, a) = -0.028 here
    for n in (64, 100):
        a = (rng.normal(size=(n, 128)) @ rng.normal(size=(128, 128)) / np.sqrt(128)).astype(np.float32)
        assert 0 <= frechet_distance(a, a) < 1e-5
        nearby = a + np.float32(1e-3) * rng.normal(size=a.shape).astype(np.float32)
        assert 0 < frechet_distance(a, nearby) < 1e-3


def test_frechet_distances_of_resamples_are_those_of_the_resampled_sets():
    rng = np.random.default_rng(1)
    ref, sets = rng.normal(size=(50, 8)), [rng.normal(size=(40, 8)) + s for s in (0.0, 1.0)]
    rows = (rng.integers(0, 50, (3, 50)), rng.integers(0, 40, (3, 40)))
    got = frechet_distances(ref, sets, rows)
    assert got.shape == (2, 3)
    expected = [[_scipy_frechet(ref[rows[0][i]], s[rows[1][i]]) for i in range(3)] for s in sets]
    np.testing.assert_allclose(got, expected, rtol=1e-7)
    np.testing.assert_allclose(frechet_distances(ref, sets), [_scipy_frechet(ref, s) for s in sets], rtol=1e-7)


def test_label_tasks():
    assert label_task(np.zeros((3, 12), np.float32), "x") == ("regression", 12)
    assert label_task(np.ones((3, 40), np.int8), "x") == ("multilabel", 40)
    assert label_task(np.array([0, 9, 3]), "x") == ("classes", 10)
    with pytest.raises(ValueError, match="no labels"):
        label_task(None, "folder /x")


def test_judge_learns_the_faces_factors_and_separates_noise(tmp_path):
    config = C.load(
        "faces",
        [
            "data.image_size=16",
            "data.num_images=1024",
            "model.encoder_conv_strides=2,2,1",
            "model.decoder_conv_t_strides=2,2,1",
            "judge.epochs=8",
        ],
    )
    info = train_judge(config, str(tmp_path), curve=True)
    assert info["task"] == "regression" and info["valid_r2"] > 0.15
    assert info["augment"] == "none"  # a mirror would change head_x: auto leaves the faces alone
    assert len(info["valid_curve_r2"]) == 8 and info["valid_curve_r2"][-1] == pytest.approx(info["valid_r2"], abs=1e-3)
    assert info["valid_curve_r2"][-1] > info["valid_curve_r2"][0]
    assert abs(info["baseline_r2"]) < 0.05  # predicting the training mean explains nothing
    features = load_judge(str(tmp_path))
    from ae_jax.data import datasets

    real = datasets.load_split(config.data, "valid").images
    more = datasets.load_split(config.data, "train").images[: len(real) * 4]
    noise = np.random.default_rng(0).random((len(more), 16, 16, 3)).astype(np.float32)
    f_real, f_more, f_noise = features(real), features(more), features(noise)
    assert f_real.shape == (len(real), 128)
    assert frechet_distance(f_real, f_more) < frechet_distance(f_real, f_noise)
    with pytest.raises(ValueError, match="judge expects images"):
        features(np.zeros((2, 8, 8, 3), np.uint8))


def test_augmentation_flips_only_where_the_labels_allow():
    assert augmentation("auto", "celeba") == "flip"
    assert augmentation("auto", "cifar10") == "flip"
    assert augmentation("auto", "faces") == "none"
    assert augmentation("auto", "mnist") == "none"  # a mirrored 2 is not a 2
    assert augmentation("flip", "faces") == "flip" and augmentation("none", "celeba") == "none"


@pytest.mark.parametrize("override", ["judge.augment=rotate", "judge.weight_decay=-0.1"])
def test_judge_config_rejects_bad_augment_and_weight_decay(override):
    with pytest.raises(C.ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        C.load("tiny", [override])


def test_judge_trains_with_flips_and_weight_decay(tmp_path):
    config = C.load("tiny", ["data.num_images=256", "judge.augment=flip", "judge.weight_decay=0.05", "judge.epochs=2"])
    info = train_judge(config, str(tmp_path))
    assert info["augment"] == "flip" and info["weight_decay"] == 0.05
    assert np.isfinite(info["valid_r2"])
    assert load_judge(str(tmp_path))(np.zeros((3, 16, 16, 3), np.uint8)).shape == (3, 128)
