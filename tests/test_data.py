"""Data sources, the decode cache, batching and task inputs, on tiny fixtures written by the tests."""

import dataclasses
import gzip
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from ae_jax.config import DataConfig
from ae_jax.data import datasets, faces
from ae_jax.runtime import configure_logging

CELEBA_WIDTH, CELEBA_HEIGHT, CROP = 178, 218, 148
ATTRIBUTES = tuple(f"Attribute_{i}" for i in range(40))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets an empty cache folder through $AE_JAX_CACHE."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("AE_JAX_CACHE", str(folder))
    return folder


def _framed_image(width: int, height: int, side: int, inside, outside) -> np.ndarray:
    """An RGB image of colour `outside` whose centred `side` square has colour `inside`."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = outside
    top, left = (height - side) // 2, (width - side) // 2
    image[top : top + side, left : left + side] = inside
    return image


def _colour(i: int) -> np.ndarray:
    return np.array([30 + 23 * i, 220 - 19 * i, 60 + 17 * i], np.uint8)


def _save_jpeg(path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, quality=95)


def _make_celeba(root, present=(1, 2, 3, 4, 5, 6), splits=(0, 0, 0, 0, 1, 2, 0, 0, 1, 2), attributes=True):
    """A CelebA folder listing len(splits) images (split codes as given) of which only `present` exist."""
    names = [f"{i:06d}.jpg" for i in range(1, len(splits) + 1)]
    (root / "img_align_celeba").mkdir(parents=True)
    for i in present:
        _save_jpeg(
            root / "img_align_celeba" / names[i - 1],
            _framed_image(CELEBA_WIDTH, CELEBA_HEIGHT, CROP, _colour(i), _colour(i) ^ 128),
        )
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in zip(names, splits)))
    table = np.where(np.random.default_rng(0).random((len(names), 40)) < 0.5, -1, 1)
    if attributes:
        rows = "".join(f"{n} " + " ".join(f"{v:2d}" for v in row) + "\n" for n, row in zip(names, table))
        (root / "list_attr_celeba.txt").write_text(f"{len(names)}\n{' '.join(ATTRIBUTES)}\n{rows}")
    return names, table


def _celeba_config(root, **overrides) -> DataConfig:
    return DataConfig(**{"name": "celeba", "dir": str(root), "image_size": 16, **overrides})


def test_celeba_folder_takes_the_present_images_of_each_split(tmp_path):
    names, table = _make_celeba(tmp_path / "celeba")
    train = datasets.load_split(_celeba_config(tmp_path / "celeba"), "train")
    assert train.images.shape == (4, 16, 16, 3) and train.images.dtype == np.uint8
    assert list(train.ids) == names[:4] and train.found == 4 and train.skipped == 0
    assert "4 of 6" in train.source
    np.testing.assert_array_equal(train.labels, table[:4])
    assert train.labels.dtype == np.int8
    assert train.label_names == ATTRIBUTES
    # The crop keeps the centred square: every pixel has the colour drawn inside it, up to JPEG error;
    # a crop one pixel off would mix in the outside colour, 128 away in every channel.
    for i, image in enumerate(train.images, start=1):
        assert np.abs(image.astype(int) - _colour(i)).max() <= 20
    for split, index in (("valid", 5), ("test", 6)):
        held_out = datasets.load_split(_celeba_config(tmp_path / "celeba"), split)
        assert list(held_out.ids) == [names[index - 1]] and "1 of 2" in held_out.source


def test_celeba_cap_and_missing_attribute_file(tmp_path):
    names, _ = _make_celeba(tmp_path / "celeba", attributes=False)
    capped = datasets.load_split(_celeba_config(tmp_path / "celeba", num_images=3), "train")
    assert list(capped.ids) == names[:3] and capped.found == 4
    assert capped.labels is None and capped.label_names == ()


def test_celeba_errors_name_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DataError, match="empty.*img_align_celeba"):
        datasets.load_split(_celeba_config(tmp_path / "empty"), "train")
    _make_celeba(tmp_path / "celeba")
    os.remove(tmp_path / "celeba" / "list_eval_partition.txt")
    with pytest.raises(datasets.DataError, match="list_eval_partition.txt"):
        datasets.load_split(_celeba_config(tmp_path / "celeba"), "train")
    with pytest.raises(datasets.DataError, match="no such folder"):
        datasets.load_split(_celeba_config(tmp_path / "absent"), "train")


def _truncated_jpeg(path) -> None:
    _save_jpeg(path, np.random.default_rng(0).integers(0, 255, (CELEBA_HEIGHT, CELEBA_WIDTH, 3), np.uint8))
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])


BAD_IMAGES = {
    "corrupt": (lambda path: path.write_bytes(b"not a jpeg at all" * 20), "corrupt or truncated"),
    "truncated": (_truncated_jpeg, "corrupt or truncated"),
    "grey": (lambda path: Image.new("L", (CELEBA_WIDTH, CELEBA_HEIGHT), 128).save(path), "greyscale"),
    "too small": (lambda path: _save_jpeg(path, np.zeros((120, 100, 3), np.uint8)), "smaller than the 148x148"),
}


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_bad_image_raises_naming_the_file_or_is_skipped_and_counted(tmp_path, kind, capsys):
    configure_logging()
    names, _ = _make_celeba(tmp_path / "celeba")
    write_bad, problem = BAD_IMAGES[kind]
    write_bad(tmp_path / "celeba" / "img_align_celeba" / names[1])
    with pytest.raises(datasets.DataError, match=f"{names[1]}: .*{problem}"):
        datasets.load_split(_celeba_config(tmp_path / "celeba"), "train")
    skipped = datasets.load_split(_celeba_config(tmp_path / "celeba", on_bad_image="skip"), "train")
    assert skipped.skipped == 1 and list(skipped.ids) == [names[0]] + names[2:4]
    assert len(skipped.labels) == len(skipped.images) == 3
    assert "skipped 1 bad images" in capsys.readouterr().err


def test_cache_is_reused_until_a_files_bytes_change(tmp_path, cache, monkeypatch):
    _make_celeba(tmp_path / "celeba")
    config = _celeba_config(tmp_path / "celeba")
    first = datasets.load_split(config, "train")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds this split")

    monkeypatch.setattr(datasets, "decode_image", no_decoding)
    second = datasets.load_split(config, "train")
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.ids, second.ids)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert (first.found, first.skipped, first.source) == (second.found, second.skipped, second.source)
    assert sorted(p.suffix for p in cache.iterdir()) == [".npy", ".npz"]  # no temporary files left
    changed = tmp_path / "celeba" / "img_align_celeba" / "000001.jpg"
    before = os.stat(changed)
    os.utime(changed, ns=(0, before.st_mtime_ns + 10**9))  # a newer time alone is no change
    datasets.load_split(config, "train")
    flipped = bytearray(changed.read_bytes())
    flipped[-3] ^= 0xFF  # same size, same time, other bytes
    changed.write_bytes(bytes(flipped))
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(AssertionError, match="decoded"):
        datasets.load_split(config, "train")


def test_cache_dir_setting_overrides_the_environment(tmp_path, cache):
    _make_celeba(tmp_path / "celeba")
    datasets.load_split(_celeba_config(tmp_path / "celeba", cache_dir=str(tmp_path / "mine")), "test")
    assert not cache.exists() and len(list((tmp_path / "mine").iterdir())) == 2


def _idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_idx(path, array: np.ndarray) -> None:
    payload = _idx_bytes(array)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def _make_idx(root, train_count=10, test_count=4):
    """Train files gzip-compressed, test files plain, as both occur in the wild."""
    rng = np.random.default_rng(1)
    arrays = {
        "train": (rng.integers(0, 256, (train_count, 28, 28), np.uint8), rng.integers(0, 10, train_count, np.uint8)),
        "t10k": (rng.integers(0, 256, (test_count, 28, 28), np.uint8), rng.integers(0, 10, test_count, np.uint8)),
    }
    root.mkdir()
    for prefix, suffix in (("train", ".gz"), ("t10k", "")):
        _write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", arrays[prefix][0])
        _write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", arrays[prefix][1])
    return arrays


def test_idx_folder_round_trips_with_valid_carved_from_train(tmp_path):
    arrays = _make_idx(tmp_path / "mnist")
    config = DataConfig(name="mnist", dir=str(tmp_path / "mnist"), image_size=28, valid_fraction=0.2)
    expected_rows = {"train": ("train", slice(0, 8)), "valid": ("train", slice(8, 10)), "test": ("t10k", slice(0, 4))}
    for split, (prefix, rows) in expected_rows.items():
        loaded = datasets.load_split(config, split)
        np.testing.assert_array_equal(loaded.images[..., 0], arrays[prefix][0][rows])
        np.testing.assert_array_equal(loaded.labels, arrays[prefix][1][rows])
        assert loaded.ids[0] == f"{prefix}[{rows.start}]" and loaded.label_names == datasets.CLASS_NAMES["mnist"]
    resized = datasets.load_split(DataConfig(name="fashion_mnist", dir=str(tmp_path / "mnist"), image_size=14), "test")
    assert resized.images.shape == (4, 14, 14, 1)
    assert resized.label_names == datasets.CLASS_NAMES["fashion_mnist"]
    downsampled = arrays["t10k"][0].reshape(4, 14, 2, 14, 2).mean((2, 4))
    assert np.abs(resized.images[..., 0] - downsampled).mean() < 40  # a resize, not another image


@pytest.mark.parametrize("file", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"])
def test_truncated_idx_raises_naming_the_file(tmp_path, file):
    _make_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / file
    path.write_bytes(path.read_bytes()[:-7])
    split = "train" if file.startswith("train") else "test"
    with pytest.raises(datasets.DataError, match=file):
        datasets.load_split(DataConfig(name="mnist", dir=str(tmp_path / "mnist"), image_size=28), split)


def test_idx_folder_without_files_names_what_is_expected(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(datasets.DataError, match="mnist: expected the IDX file train-images-idx3-ubyte"):
        datasets.load_split(DataConfig(name="mnist", dir=str(tmp_path / "mnist"), image_size=28), "train")


def test_image_folder_is_recursive_and_split_by_path(tmp_path):
    root = tmp_path / "pictures"
    (root / "sub" / "deeper").mkdir(parents=True)
    paths = [f"{folder}img{i}.png" for i, folder in enumerate(["", "sub/", "sub/deeper/"] * 7)]
    for i, relative in enumerate(paths):
        width, height = (40, 30) if i % 2 else (30, 50)
        Image.fromarray(_framed_image(width, height, 30, _colour(i % 5), 255 - _colour(i % 5))).save(root / relative)
    (root / "notes.txt").write_text("not an image")
    config = DataConfig(name="images", dir=str(root), image_size=10, valid_fraction=0.5)
    splits = {split: datasets.load_split(config, split) for split in datasets.SPLITS}
    ids = [i for split in splits.values() for i in split.ids]
    assert sorted(ids) == sorted(paths) and all(len(split) > 0 for split in splits.values())
    for split in splits.values():
        assert split.images.shape[1:] == (10, 10, 3) and split.labels is None
        for relative, image in zip(split.ids, split.images):
            colour = _colour(paths.index(relative) % 5)
            assert np.abs(image.astype(int) - colour).max() <= 2, relative


def test_empty_image_folder_raises_naming_it(tmp_path):
    (tmp_path / "nothing" / "sub").mkdir(parents=True)
    with pytest.raises(datasets.DataError, match="nothing: no images found"):
        datasets.load_split(DataConfig(name="images", dir=str(tmp_path / "nothing")), "train")


def _mixed_folder(root, mode: str, odd_mode: str, n: int = 12) -> list[str]:
    """n images of `mode` ("L" or "RGB") named img<i>.png, the first of which is of `odd_mode` instead."""
    root.mkdir()
    rng = np.random.default_rng(2)
    for i in range(n):
        shape = (12, 12) if (odd_mode if i == 0 else mode) == "L" else (12, 12, 3)
        Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(root / f"img{i}.png")
    return [f"img{i}.png" for i in range(n)]


def _train_names(names, config: DataConfig) -> list[str]:
    return sorted(name for name in names if datasets._hash_split(name, config.valid_fraction) == "train")


@pytest.mark.parametrize("mode, odd_mode, channels", [("RGB", "L", 0), ("L", "RGB", 1)])
def test_image_of_the_other_kind_is_refused_naming_it_or_converted(tmp_path, mode, odd_mode, channels):
    names = _mixed_folder(tmp_path / "pictures", mode, odd_mode)
    config = DataConfig(name="images", dir=str(tmp_path / "pictures"), image_size=12, channels=channels)
    assert names[0] in _train_names(names, config)
    kind = "greyscale" if odd_mode == "L" else "colour"
    with pytest.raises(datasets.DataError, match=f"img0.png: is {kind} .*data.convert_mode=true"):
        datasets.load_split(config, "train")
    converted = datasets.load_split(dataclasses.replace(config, convert_mode=True), "train")
    assert list(converted.ids) == _train_names(names, config)
    assert converted.images.shape[1:] == (12, 12, 3 if mode == "RGB" else 1)
    with Image.open(tmp_path / "pictures" / "img0.png") as odd:
        expected = np.asarray(odd.convert(mode)).reshape(12, 12, -1)
    np.testing.assert_array_equal(converted.images[0], expected)


def test_grey_folder_is_read_at_one_channel_with_data_channels(tmp_path, cache):
    names = _mixed_folder(tmp_path / "grey", "L", "L")
    rgb = DataConfig(name="images", dir=str(tmp_path / "grey"), image_size=12)
    grey = datasets.load_split(dataclasses.replace(rgb, channels=1), "train")
    assert grey.images.shape == (len(_train_names(names, rgb)), 12, 12, 1)
    with Image.open(tmp_path / "grey" / grey.ids[0]) as first:
        np.testing.assert_array_equal(grey.images[0, ..., 0], np.asarray(first))
    converted = datasets.load_split(dataclasses.replace(rgb, convert_mode=True), "train")
    assert converted.images.shape[-1] == 3 and converted.key != grey.key
    assert len(list(cache.glob("*.npy"))) == 2  # channels and convert_mode are part of the cache key


def _cache_files(cache):
    (images,) = cache.glob("*.npy")
    (meta,) = cache.glob("*.meta.npz")
    return images, meta


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _other_shape(path):
    np.save(path, np.zeros((3, 16, 16, 3), np.uint8))  # a valid .npy, but not of the meta file's ids


DAMAGE = {
    "truncated images": (0, _truncate, "truncated or padded: 3100 bytes, expected 3200"),
    "images of another shape": (0, _other_shape, "expected uint8 (4, 16, 16, 3)"),
    "images without a header": (0, lambda path: path.write_bytes(b"\x00" * 300), "unreadable .npy header"),
    "unreadable metadata": (1, _truncate, "unreadable metadata"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_cache_is_reported_by_path_and_rebuilt(tmp_path, cache, capsys, kind):
    configure_logging()
    _make_celeba(tmp_path / "celeba")
    config = _celeba_config(tmp_path / "celeba")
    original = np.array(datasets.load_split(config, "train").images)
    which, damage, problem = DAMAGE[kind]
    damaged = _cache_files(cache)[which]
    damage(damaged)
    capsys.readouterr()
    reloaded = datasets.load_split(config, "train")
    message = capsys.readouterr().err
    assert f"{damaged}: damaged cache file (" in message and problem in message and "rebuilding it" in message
    np.testing.assert_array_equal(reloaded.images, original)
    assert list(reloaded.ids) == [f"{i:06d}.jpg" for i in range(1, 5)]
    capsys.readouterr()
    datasets.load_split(config, "train")
    assert "damaged cache file" not in capsys.readouterr().err  # the rebuilt cache is whole


def test_faces_split_images_are_renders_of_their_factors():
    config = DataConfig(name="faces", image_size=16, num_images=20)
    train, valid = (datasets.load_split(config, split) for split in ("train", "valid"))
    other_seed = datasets.load_split(config, "train", seed=1)
    assert len(train) == 20 and len(valid) == 2 and train.labels.shape == (20, len(faces.FACE_FACTORS))
    assert train.label_names == faces.FACE_FACTORS
    rendered = np.round(np.asarray(faces.render_faces(train.labels, 16)) * 255)
    np.testing.assert_array_equal(train.images, rendered)
    assert not np.array_equal(train.labels[:2], valid.labels)
    assert not np.array_equal(train.labels, other_seed.labels)


def test_tfds_mnist_through_mock_data_carves_valid_from_train():
    config = DataConfig(name="mnist", image_size=28, valid_fraction=0.2)
    with tfds.testing.mock_data(num_examples=10):
        reference = tfds.data_source("mnist", split="train")
        splits = {split: datasets.load_split(config, split) for split in datasets.SPLITS}
        expected = np.stack([reference[i]["image"] for i in range(10)])
        expected_labels = np.array([reference[i]["label"] for i in range(10)])
    assert [len(splits[s]) for s in datasets.SPLITS] == [8, 2, 10]
    np.testing.assert_array_equal(splits["train"].images, expected[:8])
    np.testing.assert_array_equal(splits["valid"].images, expected[8:])
    np.testing.assert_array_equal(splits["valid"].labels, expected_labels[8:])
    assert splits["valid"].ids[0] == "train[8]"


def test_tfds_celeba_through_mock_data_crops_and_keeps_attributes():
    with tfds.testing.mock_data(num_examples=3):
        loaded = datasets.load_split(DataConfig(name="celeba", image_size=16), "valid")
        example = tfds.data_source("celeb_a", split="validation")[0]
    assert loaded.images.shape == (3, 16, 16, 3)
    names = tuple(example["attributes"])
    assert loaded.label_names == names
    np.testing.assert_array_equal(loaded.labels[0], [1 if example["attributes"][a] else -1 for a in names])
    expected = datasets.crop_and_resize(np.asarray(example["image"]), CROP, 16)
    np.testing.assert_array_equal(loaded.images[0], expected)


def test_tfds_not_prepared_says_how_to_prepare(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_tensorflow_installed", lambda: False)
    config = DataConfig(name="cifar10", tfds_data_dir=str(tmp_path / "tfds"))
    with pytest.raises(datasets.DataError, match=r"not prepared.*pip install ae_jax\[tfprepare\]"):
        datasets.load_split(config, "train")


def test_epoch_permutation_is_deterministic_and_differs_across_epochs():
    first = datasets.epoch_permutation(50, seed=0, epoch=0)
    np.testing.assert_array_equal(first, datasets.epoch_permutation(50, seed=0, epoch=0))
    np.testing.assert_array_equal(np.sort(first), np.arange(50))
    assert not np.array_equal(first, datasets.epoch_permutation(50, seed=0, epoch=1))
    assert not np.array_equal(first, datasets.epoch_permutation(50, seed=1, epoch=0))


def _indexed_images(n: int) -> np.ndarray:
    """Images whose pixels all hold their own index, so batches show which images they contain."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 2, 1)).copy()


def test_train_batches_follow_the_permutation_and_resume_mid_epoch():
    images = _indexed_images(23)
    batches = [np.asarray(b) for b in datasets.train_batches(images, 5, seed=3, epoch=2)]
    assert len(batches) == datasets.steps_per_epoch(23, 5) == 4
    assert all(isinstance(b, np.ndarray) and b.dtype == np.uint8 and b.shape == (5, 2, 2, 1) for b in batches)
    order = datasets.epoch_permutation(23, seed=3, epoch=2)
    np.testing.assert_array_equal(np.concatenate(batches)[:, 0, 0, 0], order[:20])
    resumed = [np.asarray(b) for b in datasets.train_batches(images, 5, seed=3, epoch=2, start_batch=2, prefetch=1)]
    np.testing.assert_array_equal(resumed, batches[2:])
    with pytest.raises(ValueError, match="batch_size 24 is larger than the 23"):
        datasets.train_batches(images, 24, seed=0, epoch=0)
    with pytest.raises(ValueError, match="start_batch 5"):
        datasets.train_batches(images, 5, seed=0, epoch=0, start_batch=5)


def test_train_batches_are_placed_with_the_sharding_and_can_stop_early():
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    batches = datasets.train_batches(_indexed_images(40), 4, seed=0, epoch=0, sharding=sharding)
    first = next(batches)
    assert isinstance(first, jax.Array) and first.sharding == sharding
    batches.close()  # stops the background thread without draining the epoch


def test_errors_while_gathering_reach_the_consumer():
    class Failing:
        def __len__(self):
            return 8

        def __getitem__(self, index):
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(datasets.train_batches(Failing(), 4, seed=0, epoch=0))


def test_ordered_batches_cover_every_image_once_with_zero_padding():
    images = _indexed_images(23) + 1  # no image is all zeros, so padding is recognisable
    batches = list(datasets.ordered_batches(images, 5))
    assert [n for _, n in batches] == [5, 5, 5, 5, 3]
    assert all(batch.shape == (5, 2, 2, 1) for batch, _ in batches)
    valid = np.concatenate([np.asarray(batch)[:n] for batch, n in batches])
    np.testing.assert_array_equal(valid, images)
    assert not np.asarray(batches[-1][0])[3:].any()


def test_make_inputs_for_each_task():
    make_inputs = jax.jit(datasets.make_inputs, static_argnames="task")
    key = jax.random.key(0)
    targets = jnp.asarray(np.random.default_rng(1).uniform(0.2, 0.8, (8, 32, 32, 3)), jnp.float32)
    np.testing.assert_array_equal(make_inputs(key, targets, "reconstruct", 0.1, 0.0), targets)

    grey = np.asarray(make_inputs(key, targets, "recolor", 0.1, 0.0))
    np.testing.assert_allclose(
        grey, np.broadcast_to((np.asarray(targets) @ datasets.LUMA_WEIGHTS)[..., None], targets.shape), rtol=1e-6
    )

    noisy = np.asarray(make_inputs(key, targets, "denoise", 0.1, 0.0))
    assert noisy.shape == targets.shape and noisy.min() >= 0 and noisy.max() <= 1
    np.testing.assert_allclose(np.std(noisy - np.asarray(targets)), 0.1, rtol=0.05)

    drop_rate = 0.3
    dropped = np.asarray(make_inputs(key, targets, "denoise", 0.0, drop_rate))
    zero_pixels = (dropped == 0).all(-1)
    np.testing.assert_array_equal(dropped[~zero_pixels], np.asarray(targets)[~zero_pixels])
    tolerance = 4 * np.sqrt(drop_rate * (1 - drop_rate) / zero_pixels.size)
    assert abs(zero_pixels.mean() - drop_rate) < tolerance
    with pytest.raises(ValueError, match="recolor needs RGB"):
        datasets.make_inputs(key, targets[..., :1], "recolor", 0.1, 0.0)
    with pytest.raises(ValueError, match="task 'paint'"):
        datasets.make_inputs(key, targets, "paint", 0.1, 0.0)


def test_check_source_counts_the_training_split_without_decoding(tmp_path, monkeypatch):
    _make_celeba(tmp_path / "celeba")
    _make_idx(tmp_path / "mnist")
    monkeypatch.setattr(datasets, "_decode_all", lambda *a, **k: pytest.fail("check_source decoded images"))
    datasets.check_source(_celeba_config(tmp_path / "celeba"), batch_size=4)  # 4 train files present
    with pytest.raises(datasets.DataError, match="batch_size=5 exceeds the 4 training images of data.name=celeba"):
        datasets.check_source(_celeba_config(tmp_path / "celeba"), batch_size=5)
    with pytest.raises(datasets.DataError, match="batch_size=4 exceeds the 3 training images"):
        datasets.check_source(_celeba_config(tmp_path / "celeba", num_images=3), batch_size=4)
    mnist = DataConfig(name="mnist", dir=str(tmp_path / "mnist"), image_size=28, valid_fraction=0.2)
    datasets.check_source(mnist, batch_size=8)  # 10 in the IDX header, 2 carved off for valid
    with pytest.raises(datasets.DataError, match="batch_size=9 exceeds the 8 training images of data.name=mnist"):
        datasets.check_source(mnist, batch_size=9)
    with pytest.raises(datasets.DataError, match="batch_size=9 exceeds the 8 training images of data.name=faces"):
        datasets.check_source(DataConfig(name="faces", num_images=8), batch_size=9)


def test_check_source_refuses_missing_data(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DataError, match="nowhere: no such folder"):
        datasets.check_source(DataConfig(name="images", dir=str(tmp_path / "nowhere")), batch_size=1)
    with pytest.raises(datasets.DataError, match="empty: no images found"):
        datasets.check_source(DataConfig(name="images", dir=str(tmp_path / "empty")), batch_size=1)
    with pytest.raises(datasets.DataError, match="empty: not a CelebA folder"):
        datasets.check_source(_celeba_config(tmp_path / "empty"), batch_size=1)


def test_one_data_line_per_split_says_how_many_images_are_used(tmp_path, capsys):
    configure_logging()
    _make_celeba(tmp_path / "celeba")
    datasets.load_split(_celeba_config(tmp_path / "celeba", num_images=3), "train")
    lines = [line for line in capsys.readouterr().err.splitlines() if "celeba folder" in line]
    assert len(lines) == 1 and lines[0].endswith("(using the first 3: data.num_images): 3 images used"), lines
