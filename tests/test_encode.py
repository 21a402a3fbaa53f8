"""`ae-jax encode` of a dataset that is not the run's (a folder of images), and training on grey folders."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from ae_jax import config as config_lib
from ae_jax.cli import main
from ae_jax.data import datasets
from ae_jax.evaluators import encode
from ae_jax.train import loop


def _png_folder(root, n: int, mode: str, seed: int) -> list[str]:
    """n random 20x20 PNGs of `mode` ("RGB" or "L") under root; their file names, sorted."""
    rng = np.random.default_rng(seed)
    os.makedirs(root)
    names = [f"pic{i:02d}.png" for i in range(n)]
    for name in names:
        shape = (20, 20, 3) if mode == "RGB" else (20, 20)
        Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(os.path.join(root, name))
    return sorted(names)


def _in_split(names, split: str, valid_fraction: float = 0.1) -> list[str]:
    return [name for name in names if datasets._hash_split(name, valid_fraction) == split]


def _encode_folder(run_dir, folder, out, split, *extra) -> int:
    sets = ["data.name=images", f"data.dir={folder}", *extra]
    return main(["encode", run_dir, "--split", split, "--out", out, *(a for s in sets for a in ("--set", s))])


def test_encode_a_folder_of_images_with_a_run_trained_on_faces(tmp_path):
    config = config_lib.load("tiny", [f"workdir={tmp_path}"])
    loop.train(config)
    folder = str(tmp_path / "other")
    names = _png_folder(folder, 40, "RGB", seed=0)
    out = str(tmp_path / "z" / "other.npy")
    assert main(["encode", config.run_dir, "--split", "valid", "--out", out]) == 0  # the faces have labels
    assert os.path.exists(tmp_path / "z" / "other_labels.npy")
    assert _encode_folder(config.run_dir, folder, out, "train") == 0
    expected = _in_split(names, "train")
    z = np.load(out)
    assert z.shape == (len(expected), config.model.z_dim) and np.isfinite(z).all()
    assert list(np.load(str(tmp_path / "z" / "other_ids.npy"))) == expected
    assert not os.path.exists(tmp_path / "z" / "other_labels.npy")  # a folder has none: the faces' are removed
    assert not os.path.exists(tmp_path / "z" / "other_label_names.json")
    with open(encode.record_path(out)) as f:
        record = json.load(f)
    assert record["inputs"]["data.name"] == "images" and record["inputs"]["data.dir"] == folder
    assert record["inputs"]["data.image_size"] == config.data.image_size and record["inputs"]["data.channels"] == 3
    assert record["n_points"] == len(expected) and folder in record["data"]["source"]
    assert not os.path.exists(encode.z_path(config.run_dir, "train"))  # the run's own z-points are untouched


def test_grey_folder_trains_and_encodes_colour_images_with_convert_mode(tmp_path, capsys):
    grey = str(tmp_path / "grey")
    _png_folder(grey, 40, "L", seed=1)
    config = config_lib.load(
        "tiny",
        [
            f"workdir={tmp_path}",
            "data.name=images",
            f"data.dir={grey}",
            "data.channels=1",
            "data.valid_fraction=0.3",
            "model.decoder_conv_t_filters=8,1",
        ],
    )
    assert loop.train(config)["status"] == "complete"
    colour = str(tmp_path / "colour")
    names = _png_folder(colour, 40, "RGB", seed=2)
    out = str(tmp_path / "colour.npy")
    capsys.readouterr()
    assert _encode_folder(config.run_dir, colour, out, "test", "data.valid_fraction=0.5") == 2
    assert "is colour (mode RGB) in a greyscale dataset" in capsys.readouterr().err  # read at the run's 1 channel
    assert _encode_folder(config.run_dir, colour, out, "test", "data.valid_fraction=0.5", "data.convert_mode=true") == 0
    expected = _in_split(names, "test", 0.5)
    assert np.load(out).shape == (len(expected), config.model.z_dim)
    assert list(np.load(str(tmp_path / "colour_ids.npy"))) == expected


@pytest.mark.parametrize("split", ["all", None])
def test_another_dataset_needs_one_split_and_out(tmp_path, split, capsys):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    config_lib.save(config_lib.load("tiny"), os.path.join(run_dir, "config.json"))
    argv = ["encode", run_dir, "--set", "data.name=images", "--set", f"data.dir={tmp_path}"]
    argv += ["--split", "all", "--out", str(tmp_path / "z.npy")] if split else []
    assert main(argv) == 2
    assert "give one --split and --out" in capsys.readouterr().err


def test_a_folder_is_read_at_the_run_channel_count(tmp_path, capsys):
    """An MNIST run (1 channel) encodes a folder as grey images: the config is valid, only the checkpoint is missing."""
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    config_lib.save(config_lib.load("mnist"), os.path.join(run_dir, "config.json"))
    assert _encode_folder(run_dir, str(tmp_path), str(tmp_path / "z.npy"), "train") == 2
    assert "no readable checkpoint" in capsys.readouterr().err
    assert _encode_folder(run_dir, str(tmp_path), str(tmp_path / "z.npy"), "train", "data.channels=3") == 2
    assert "the last entry must equal the image channel count 3" in capsys.readouterr().err
