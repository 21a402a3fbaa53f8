"""Datasets as uint8 image arrays, a decode cache, device batching, and the network input of each task.

Sources (by `DataConfig.name`): the embedded rendered faces, a CelebA folder in the official layout, any
folder of images, MNIST-style IDX files, and TFDS (read without TensorFlow). Every source is decoded,
cropped and resized once, then cached as a uint8 `.npy` that later loads memory-map; a cache file that does
not match its metadata and the config (truncated, unreadable) is reported by path and rebuilt.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import json
import logging
import math
import os
import queue
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from tqdm import tqdm

from ae_jax import sharding as sharding_lib
from ae_jax import stages
from ae_jax.config import DataConfig
from ae_jax.data import faces
from ae_jax.runtime import make_key

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
DEFAULT_FACES = 4096
CACHE_FORMAT = 1  # bump when the cached content of any source changes meaning
DECODE_THREADS = os.cpu_count() or 2
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
TFDS_NAMES = {"celeba": "celeb_a", "mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10"}
TFDS_VALID_SPLITS = {"celeb_a": "validation"}  # the others have none: valid is carved from the end of train


class DataError(ValueError):
    """Data that cannot be used; the message names the file or folder at fault."""


class BadImage(Exception):
    """One image that cannot be used; the message says what is wrong with it."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    images: np.ndarray  # uint8 (N, H, W, C), usually a read-only np.memmap of the cache
    ids: np.ndarray  # str: file names or "<split>[<index>]"
    labels: np.ndarray | None  # celeba: int8 (N, 40) of +-1; mnist/fashion_mnist/cifar10: int32; faces: factors
    label_names: tuple[str, ...]
    found: int  # images of this split found at the source (before the num_images cap)
    skipped: int  # bad images skipped (data.on_bad_image=skip)
    source: str  # human-readable description of where the images came from
    key: str = ""  # digest of everything the decoded content depends on (names its cache files)

    def __len__(self) -> int:
        return len(self.images)


class _Plan(NamedTuple):
    key: dict  # everything the decoded content depends on; hashed into the cache file name
    build: Callable[[], Dataset]  # decodes the images (only on a cache miss)


def load_split(cfg: DataConfig, split: str, seed: int = 0) -> Dataset:
    """Loads split train|valid|test of the dataset `cfg` describes, decoding only on a cache miss.

    `seed` only changes the rendered faces; every other source is fixed by its files.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    dataset = _cached(cfg, split, _plan(cfg, split, seed))
    logger.info(data_line(dataset))
    return dataset


def data_line(dataset: Dataset) -> str:
    """The one log line of a loaded split: where its images come from and how many are used."""
    skipped = f"; skipped {dataset.skipped} bad images" if dataset.skipped else ""
    return f"{dataset.source}: {len(dataset):,} images used{skipped}"


def check_source(cfg: DataConfig, batch_size: int, exact_size: bool = False) -> None:
    """Refuse, before a run folder is made or an image decoded, data that is missing or has fewer training images
    than one batch (counted from file lists, partition file and IDX headers; TFDS is checked when opened); with
    exact_size (a study comparing training-set sizes), also a data.num_images above the images found."""
    _check_location(cfg)
    found = _train_found(cfg)
    if exact_size and found is not None and cfg.num_images > found:
        raise DataError(
            f"data.num_images={cfg.num_images:,} exceeds the {found:,} training images found "
            f"(data.name={cfg.name}, data.dir={cfg.dir!r}): lower data.num_images (0: all) or add images"
        )
    n_train = None if found is None else len(_cap(range(found), cfg, "train"))
    if n_train is not None and n_train < batch_size:
        raise DataError(
            f"train.batch_size={batch_size} exceeds the {n_train} training images of data.name={cfg.name} "
            f"(data.dir={cfg.dir!r}, data.num_images={cfg.num_images}): lower train.batch_size or add images"
        )


def _check_location(cfg: DataConfig) -> None:
    """data.dir is an existing folder for the sources read from one, and empty for the rendered faces and TFDS."""
    if cfg.name == "faces" and cfg.dir:
        raise DataError(f"data.name=faces is rendered, not read: leave data.dir empty (got {cfg.dir!r})")
    if cfg.dir and cfg.name not in _FOLDER_PLANS:
        raise DataError(f"data.name={cfg.name} is read from TFDS only; leave data.dir empty (got {cfg.dir!r})")
    if cfg.dir and not os.path.isdir(cfg.dir):
        raise DataError(f"{cfg.dir}: no such folder (data.dir for data.name={cfg.name})")
    if cfg.name == "images" and not cfg.dir:
        raise DataError("data.name=images needs data.dir=<folder of .jpg/.jpeg/.png images>")


def _train_found(cfg: DataConfig) -> int | None:
    """The training images a source holds before data.num_images caps them, where counting needs no decoding
    (the rendered faces: as many as asked)."""
    if cfg.name == "faces":
        return cfg.num_images or DEFAULT_FACES
    if not cfg.dir:
        return None
    if cfg.name == "celeba":
        return len(_celeba_split_files(cfg, "train")[1])
    if cfg.name == "images":
        return len(_image_split_files(cfg, "train")[1])
    return len(_carve(_idx_length(_idx_file(cfg.dir, "train-images-idx3-ubyte")), "train", cfg.valid_fraction))


def _plan(cfg: DataConfig, split: str, seed: int) -> _Plan:
    _check_location(cfg)
    if cfg.name == "faces":
        return _faces_plan(cfg, split, seed)
    return _FOLDER_PLANS[cfg.name](cfg, split) if cfg.dir else _tfds_plan(cfg, split)


def _held_out_count(n: int, fraction: float) -> int:
    return max(1, round(n * fraction))


def _carve(n: int, split: str, valid_fraction: float) -> range:
    """Rows of a split for sources with only train and test: valid is the last valid_fraction of train."""
    if split == "test":
        return range(n)
    num_valid = _held_out_count(n, valid_fraction)
    return range(n - num_valid, n) if split == "valid" else range(n - num_valid)


def _cap(items: Sequence, cfg: DataConfig, split: str) -> Sequence:
    """The first cfg.num_images items of the training split (all when 0); other splits are not capped."""
    return items[: cfg.num_images] if split == "train" and cfg.num_images > 0 else items


def _cap_note(found: int, used: int) -> str:
    return f" (using the first {used}: data.num_images)" if used < found else ""


def _base_key(cfg: DataConfig, split: str, **source) -> dict:
    return dict(
        format=CACHE_FORMAT,
        name=cfg.name,
        split=split,
        image_size=cfg.image_size,
        crop_size=cfg.crop_size,
        num_images=cfg.num_images,
        valid_fraction=cfg.valid_fraction,
        on_bad_image=cfg.on_bad_image,
        **({"channels": cfg.channels} if cfg.channels else {}),  # keys made before these settings stay valid
        **({"convert_mode": True} if cfg.convert_mode else {}),
        **source,
    )


def _file_signature(paths: Sequence[str]) -> str:
    """A hash of the names, sizes and contents of `paths`: changes when any file's bytes do (not its times)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f"{path}\0{os.fstat(f.fileno()).st_size}\0".encode())
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Decoding and preprocessing of single images.


def crop_and_resize(image: np.ndarray, crop_size: int | None, image_size: int) -> np.ndarray:
    """Centred square crop of side `crop_size` (None: the largest square), then antialiased resize.

    Raises BadImage when the image is smaller than the crop.
    """
    height, width, channels = image.shape
    side = crop_size or min(height, width)
    if min(height, width) < side:
        raise BadImage(f"is {width}x{height}, smaller than the {side}x{side} crop (data.crop_size)")
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    if side != image_size:
        resized = Image.fromarray(square[..., 0] if channels == 1 else square).resize(
            (image_size, image_size), Image.Resampling.LANCZOS
        )
        square = np.asarray(resized).reshape(image_size, image_size, channels)
    return np.ascontiguousarray(square)


def decode_image(path: str, channels: int, crop_size: int | None, image_size: int, convert: bool = False) -> np.ndarray:
    """Decodes an image file into uint8 (image_size, image_size, channels); raises BadImage saying why not.

    A grey image in an RGB set (or a colour one in a grey set) is refused unless `convert` (data.convert_mode).
    """
    try:
        with Image.open(path) as image:
            image.load()
            grey = image.mode in GREY_MODES
            if grey != (channels == 1) and not convert:
                kind, dataset = ("greyscale", "an RGB") if grey else ("colour", "a greyscale")
                raise BadImage(
                    f"is {kind} (mode {image.mode}) in {dataset} dataset; data.convert_mode=true converts such images"
                )
            pixels = np.asarray(image.convert("RGB" if channels == 3 else "L"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImage(f"cannot be decoded, the file is corrupt or truncated ({e})") from None
    return crop_and_resize(pixels.reshape(*pixels.shape[:2], channels), crop_size, image_size)


def _decode_all(
    load: Callable[[int], np.ndarray], names: Sequence[str], on_bad_image: str, description: str
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `load(i)` for every item on a thread pool into one uint8 array: (images, indices of kept items).

    A BadImage either stops with a DataError naming the item or, with on_bad_image=skip, drops the item.
    """

    def attempt(index: int) -> tuple[np.ndarray | None, str]:
        try:
            return load(index), ""
        except BadImage as e:
            return None, str(e)

    images, kept = None, []
    pool = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS)
    try:
        results = pool.map(attempt, range(len(names)))
        for index, (image, problem) in enumerate(tqdm(results, total=len(names), desc=description, unit="img")):
            if problem:
                if on_bad_image == "error":
                    raise DataError(
                        f"{names[index]}: {problem} ({description}; set data.on_bad_image=skip to skip such images)"
                    )
                continue
            if images is None:
                images = np.empty((len(names), *image.shape), np.uint8)
            images[len(kept)] = image
            kept.append(index)
    finally:
        pool.shutdown(cancel_futures=True)
    if not kept:
        raise DataError(f"{description}: no usable images" + (f" ({len(names)} found, all bad)" if names else ""))
    return images[: len(kept)], np.asarray(kept)


# ---------------------------------------------------------------------------------------------
# Sources.


def _faces_plan(cfg: DataConfig, split: str, seed: int) -> _Plan:
    num_train = cfg.num_images or DEFAULT_FACES
    n = num_train if split == "train" else _held_out_count(num_train, cfg.valid_fraction)
    split_seed = seed * len(SPLITS) + SPLITS.index(split)
    with open(faces.__file__, "rb") as f:
        renderer = hashlib.sha256(f.read()).hexdigest()

    def build() -> Dataset:
        images, factors = faces.make_faces(split_seed, n, cfg.image_size)
        return Dataset(
            images,
            np.array([str(i) for i in range(n)]),
            factors,
            faces.FACE_FACTORS,
            n,
            0,
            f"faces rendered at {cfg.image_size}px with seed {split_seed}: {n} images in split {split}",
        )

    return _Plan(_base_key(cfg, split, seed=split_seed, renderer=renderer), build)


def _read_partition(path: str) -> list[list[str]]:
    """The `<file> <0|1|2>` rows of list_eval_partition.txt; DataError names the file and line at fault."""
    if not os.path.isfile(path):
        raise DataError(
            f"{path}: annotation file missing (a CelebA folder needs the official partition file, "
            "`<file> <0|1|2>` per line for train/valid/test)"
        )
    with open(path) as f:
        lines = f.read().splitlines()
    rows = [line.split() for line in lines]
    bad = next(
        (
            number
            for number, row in enumerate(rows, start=1)
            if row and (len(row) != 2 or row[1] not in ("0", "1", "2"))
        ),
        None,
    )
    if bad is not None:
        raise DataError(f"{path}:{bad}: expected `<file> <0|1|2>`, got {lines[bad - 1][:80]!r}")
    return [row for row in rows if row]


def _celeba_attributes(path: str, names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The +-1 attribute rows (int8) of `names` from list_attr_celeba.txt, and the attribute names.

    Only the rows of `names` are split into fields: the full file has 202,599 rows of 41 fields.
    """
    with open(path) as f:
        lines = f.read().splitlines()
    header = tuple(lines[1].split()) if len(lines) > 1 else ()
    if not header:
        raise DataError(f"{path}: expected a count line, then a header line of attribute names")
    line_of = {line.split(maxsplit=1)[0]: line for line in lines[2:] if line.strip()}
    missing = [name for name in names if name not in line_of]
    if missing:
        raise DataError(f"{path}: no attributes for {len(missing)} images, e.g. {missing[0]}")
    rows = [line_of[name].split()[1:] for name in names]
    bad = next((name for name, row in zip(names, rows) if len(row) != len(header) or not set(row) <= {"1", "-1"}), None)
    if bad is not None:
        raise DataError(f"{path}: the row of {bad} must hold {len(header)} values of +1 or -1: {line_of[bad][:80]!r}")
    return np.array(rows, dtype=np.int8), header


def _celeba_split_files(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """(the files of `split` that list_eval_partition.txt lists, those of them present in img_align_celeba/);
    DataError when the layout is not CelebA's or none is present."""
    image_dir = os.path.join(cfg.dir, "img_align_celeba")
    partition_path = os.path.join(cfg.dir, "list_eval_partition.txt")
    if not os.path.isdir(image_dir):
        raise DataError(
            f"{cfg.dir}: not a CelebA folder: expected img_align_celeba/ (the aligned JPEGs) "
            "and list_eval_partition.txt"
        )
    partition = _read_partition(partition_path)
    split_code = str(SPLITS.index(split))
    listed = [name for name, code in partition if code == split_code]
    present = set(os.listdir(image_dir))
    found = [name for name in listed if name in present]
    if not found:
        raise DataError(
            f"{image_dir}: none of the {len(listed)} images of split {split} listed in {partition_path} is present"
        )
    return listed, found


def _celeba_folder_plan(cfg: DataConfig, split: str) -> _Plan:
    """The official layout: img_align_celeba/*.jpg, list_eval_partition.txt, optional list_attr_celeba.txt."""
    image_dir = os.path.join(cfg.dir, "img_align_celeba")
    partition_path = os.path.join(cfg.dir, "list_eval_partition.txt")
    attributes_path = os.path.join(cfg.dir, "list_attr_celeba.txt")
    listed, found = _celeba_split_files(cfg, split)
    names = _cap(found, cfg, split)
    paths = [os.path.join(image_dir, name) for name in names]
    annotations = [p for p in (partition_path, attributes_path) if os.path.isfile(p)]

    def build() -> Dataset:
        images, kept = _decode_all(
            lambda i: decode_image(paths[i], cfg.image_channels, cfg.crop_size, cfg.image_size, cfg.convert_mode),
            paths,
            cfg.on_bad_image,
            f"decoding celeba {split}",
        )
        ids = np.array(names)[kept]
        labels, label_names = (
            _celeba_attributes(attributes_path, ids) if os.path.isfile(attributes_path) else (None, ())
        )
        source = f"celeba folder {cfg.dir}: {len(found)} of {len(listed)} files of split {split} present" + _cap_note(
            len(found), len(names)
        )
        return Dataset(images, ids, labels, label_names, len(found), len(names) - len(kept), source)

    key = _base_key(cfg, split, root=os.path.abspath(cfg.dir), files=_file_signature(paths + annotations))
    return _Plan(key, build)


def _hash_split(relative_path: str, valid_fraction: float) -> str:
    """A fixed split for a file from a hash of its path: valid and test each get valid_fraction / 2."""
    position = int.from_bytes(hashlib.sha256(relative_path.encode()).digest()[:8], "big") / 2**64
    return "test" if position < valid_fraction / 2 else "valid" if position < valid_fraction else "train"


def _image_split_files(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """(every .jpg/.jpeg/.png under cfg.dir, recursive, relative to it; those of `split` by the hash of their
    path); DataError when there are none."""
    relative_paths = sorted(
        os.path.relpath(os.path.join(folder, file), cfg.dir).replace(os.sep, "/")
        for folder, _, files in os.walk(cfg.dir)
        for file in files
        if file.lower().endswith(IMAGE_SUFFIXES)
    )
    if not relative_paths:
        raise DataError(f"{cfg.dir}: no images found (expected .jpg, .jpeg or .png files, searched recursively)")
    found = [p for p in relative_paths if _hash_split(p, cfg.valid_fraction) == split]
    if not found:
        raise DataError(
            f"{cfg.dir}: none of the {len(relative_paths)} images falls in split {split} "
            f"(valid_fraction={cfg.valid_fraction}); add images or raise data.valid_fraction"
        )
    return relative_paths, found


def _image_folder_plan(cfg: DataConfig, split: str) -> _Plan:
    """Every .jpg/.jpeg/.png under cfg.dir (recursive), split by a hash of its relative path."""
    relative_paths, found = _image_split_files(cfg, split)
    names = _cap(found, cfg, split)
    paths = [os.path.join(cfg.dir, p) for p in names]

    def build() -> Dataset:
        images, kept = _decode_all(
            lambda i: decode_image(paths[i], cfg.image_channels, None, cfg.image_size, cfg.convert_mode),
            paths,
            cfg.on_bad_image,
            f"decoding images {split}",
        )
        source = f"image folder {cfg.dir}: {len(found)} of {len(relative_paths)} images in split {split}" + _cap_note(
            len(found), len(names)
        )
        return Dataset(images, np.array(names)[kept], None, (), len(found), len(names) - len(kept), source)

    key = _base_key(cfg, split, root=os.path.abspath(cfg.dir), files=_file_signature(paths))
    return _Plan(key, build)


def read_idx(path: str) -> np.ndarray:
    """The uint8 array of an IDX file (optionally .gz); DataError naming the file if it is not valid."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: not a complete gzip file ({e})") from None
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex() or 'missing'})")
    rank = data[3]
    header_size = 4 + 4 * rank
    if len(data) < header_size:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{rank}I", data[4:header_size])
    if len(data) - header_size != np.prod(shape):
        raise DataError(
            f"{path}: truncated or padded: header says shape {shape} = {np.prod(shape)} bytes, "
            f"file holds {len(data) - header_size}"
        )
    return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape)


def _idx_file(folder: str, stem: str) -> str:
    for path in (os.path.join(folder, stem), os.path.join(folder, stem + ".gz")):
        if os.path.isfile(path):
            return path
    raise DataError(f"{folder}: expected the IDX file {stem} or {stem}.gz")


def _idx_length(path: str) -> int:
    """The item count in an IDX file's header (its first dimension), read without the data."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            header = f.read(8)
    except (EOFError, OSError) as e:
        raise DataError(f"{path}: unreadable IDX header ({e})") from None
    return struct.unpack(">I", header[4:])[0] if len(header) == 8 else 0


def _idx_folder_plan(cfg: DataConfig, split: str) -> _Plan:
    """MNIST-style IDX files: train-* gives train and (its last valid_fraction) valid, t10k-* gives test."""
    prefix = "t10k" if split == "test" else "train"
    images_path = _idx_file(cfg.dir, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_file(cfg.dir, f"{prefix}-labels-idx1-ubyte")

    def build() -> Dataset:
        raw_images, raw_labels = read_idx(images_path), read_idx(labels_path)
        if raw_images.ndim != 3:
            raise DataError(f"{images_path}: expected images of rank 3, got shape {raw_images.shape}")
        if raw_labels.shape != raw_images.shape[:1]:
            raise DataError(
                f"{labels_path}: shape {raw_labels.shape} does not match the {len(raw_images)} images of {images_path}"
            )
        rows = _carve(len(raw_images), split, cfg.valid_fraction)
        used = _cap(rows, cfg, split)
        names = [f"{prefix}[{i}]" for i in used]
        images, kept = _preprocess_arrays(
            lambda i: raw_images[used[i]][..., None], names, cfg, None, f"resizing {cfg.name} {split}"
        )
        source = f"{cfg.name} IDX folder {cfg.dir}: {len(rows)} images in split {split}" + _cap_note(
            len(rows), len(used)
        )
        return Dataset(
            images,
            np.array(names)[kept],
            raw_labels[np.asarray(used)[kept]].astype(np.int32),
            CLASS_NAMES[cfg.name],
            len(rows),
            len(used) - len(kept),
            source,
        )

    key = _base_key(cfg, split, files=_file_signature([os.path.abspath(images_path), os.path.abspath(labels_path)]))
    return _Plan(key, build)


_FOLDER_PLANS = {
    "celeba": _celeba_folder_plan,
    "images": _image_folder_plan,
    "mnist": _idx_folder_plan,
    "fashion_mnist": _idx_folder_plan,
}


def _preprocess_arrays(
    load: Callable[[int], np.ndarray], names: Sequence[str], cfg: DataConfig, crop_size: int | None, description: str
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded arrays checked for channels, then cropped and resized: (images, indices kept)."""

    def preprocess(index: int) -> np.ndarray:
        image = load(index)
        if image.shape[-1] != cfg.image_channels:
            raise BadImage(f"has {image.shape[-1]} channels, data.name={cfg.name} has {cfg.image_channels}")
        return crop_and_resize(image, crop_size, cfg.image_size)

    return _decode_all(preprocess, names, cfg.on_bad_image, description)


def _tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _open_tfds(name: str, split: str, data_dir: str) -> Sequence[dict[str, Any]]:
    """The random-access TFDS data source of a prepared dataset; preparing it needs TensorFlow and internet."""
    import tensorflow_datasets as tfds  # slow import; only TFDS sources need it

    can_prepare = _tensorflow_installed()
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir or None, download=can_prepare)
    except Exception as e:  # TFDS raises many types here; all mean the same to the user
        where = data_dir or "the TFDS default data_dir ($TFDS_DATA_DIR or ~/tensorflow_datasets)"
        remedy = (
            "preparing it needs internet access"
            if can_prepare
            else "preparing it needs TensorFlow and internet access (`pip install ae_jax[tfprepare]` "
            "installs TensorFlow)"
        )
        raise DataError(
            f"TFDS dataset {name} (split {split}) is not prepared as array_record in {where}: "
            f"{remedy}; or set data.dir to local files. TFDS said: {type(e).__name__}: {e}"
        ) from e


def _tfds_plan(cfg: DataConfig, split: str) -> _Plan:
    """TFDS data_source of celeb_a, mnist, fashion_mnist or cifar10; valid is carved from train if missing."""
    name = TFDS_NAMES[cfg.name]
    tfds_split = {"train": "train", "valid": TFDS_VALID_SPLITS.get(name, "train"), "test": "test"}[split]
    source = _open_tfds(name, tfds_split, cfg.tfds_data_dir)
    n = len(source)
    rows = range(n) if name in TFDS_VALID_SPLITS else _carve(n, split, cfg.valid_fraction)
    used = _cap(rows, cfg, split)
    names = [f"{tfds_split}[{i}]" for i in used]
    celeba = cfg.name == "celeba"

    def build() -> Dataset:
        label_names = tuple(source.dataset_info.features["attributes"].keys()) if celeba else CLASS_NAMES[cfg.name]
        labels = np.zeros((len(used), len(label_names)), np.int8) if celeba else np.zeros(len(used), np.int32)

        def load(index: int) -> np.ndarray:
            example = source[used[index]]
            # Each thread writes only its own row, so the labels need no lock.
            labels[index] = [1 if example["attributes"][a] else -1 for a in label_names] if celeba else example["label"]
            return np.asarray(example["image"])

        images, kept = _preprocess_arrays(
            load, names, cfg, cfg.crop_size if celeba else None, f"reading tfds {name} {split}"
        )
        source_text = (
            f"tfds {name} ({cfg.tfds_data_dir or 'default data_dir'}): {len(rows)} images of "
            f"{tfds_split} in split {split}" + _cap_note(len(rows), len(used))
        )
        return Dataset(
            images, np.array(names)[kept], labels[kept], label_names, len(rows), len(used) - len(kept), source_text
        )

    key = _base_key(
        cfg,
        split,
        tfds=name,
        data_dir=str(source.dataset_info.data_dir),
        version=str(source.dataset_info.version),
        rows=[rows.start, rows.stop],
        source_size=n,
    )
    return _Plan(key, build)


# ---------------------------------------------------------------------------------------------
# The cache: one uint8 .npy per split (memory-mapped when read) and a .meta.npz sidecar.


def cache_dir(cfg: DataConfig) -> str:
    """data.cache_dir, else $AE_JAX_CACHE, else ~/.cache/ae_jax."""
    return cfg.cache_dir or os.environ.get("AE_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ae_jax")


class _DamagedCache(Exception):
    """A cache file that cannot be used as it is: (path, what is wrong with it)."""


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_images_file(path: str, shape: tuple[int, ...]) -> None:
    """Raises _DamagedCache unless `path` is a uint8 C-order .npy of `shape` holding exactly its bytes."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in _NPY_HEADER_READERS:
                raise ValueError(f"unsupported .npy format version {version}")
            found_shape, fortran_order, dtype = _NPY_HEADER_READERS[version](f)
            header_size = f.tell()
    except (OSError, ValueError, EOFError) as e:
        raise _DamagedCache(path, f"unreadable .npy header: {e}") from None
    if dtype != np.uint8 or fortran_order or found_shape != shape:
        raise _DamagedCache(path, f"holds {dtype} {found_shape}, expected uint8 {shape}")
    size, expected = os.path.getsize(path), header_size + math.prod(shape)
    if size != expected:
        raise _DamagedCache(path, f"truncated or padded: {size} bytes, expected {expected} for {shape}")


def _open_cache(images_path: str, meta_path: str, cfg: DataConfig, key: str) -> Dataset:
    """The cached dataset, its images memory-mapped; raises _DamagedCache naming the file that does not fit."""
    try:
        with np.load(meta_path, allow_pickle=False) as meta:
            ids = meta["ids"]
            labels = meta["labels"] if "labels" in meta else None
            label_names = tuple(str(name) for name in meta["label_names"])
            found, skipped, source = int(meta["found"]), int(meta["skipped"]), str(meta["source"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise _DamagedCache(meta_path, f"unreadable metadata: {type(e).__name__}: {e}") from None
    if labels is not None and len(labels) != len(ids):
        raise _DamagedCache(meta_path, f"{len(labels)} labels for {len(ids)} ids")
    _check_images_file(images_path, (len(ids), cfg.image_size, cfg.image_size, cfg.image_channels))
    images = np.load(images_path, mmap_mode="r")
    return Dataset(images, ids, labels, label_names, found, skipped, source, key)


def _cached(cfg: DataConfig, split: str, plan: _Plan) -> Dataset:
    """The dataset from the cache, building and writing it first on a miss or when a cache file is damaged."""
    digest = hashlib.sha256(json.dumps(plan.key, sort_keys=True).encode()).hexdigest()[:20]
    stem = os.path.join(cache_dir(cfg), f"{cfg.name}-{split}-{cfg.image_size}px-{digest}")
    images_path, meta_path = stem + ".npy", stem + ".meta.npz"
    if os.path.isfile(images_path) and os.path.isfile(meta_path):
        try:
            return _open_cache(images_path, meta_path, cfg, digest)
        except _DamagedCache as e:
            path, problem = e.args
            logger.warning(f"{path}: damaged cache file ({problem}); rebuilding it")
    dataset = plan.build()
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    meta = dict(
        ids=dataset.ids,
        label_names=np.array(dataset.label_names, dtype=str),
        found=dataset.found,
        skipped=dataset.skipped,
        source=dataset.source,
    )
    if dataset.labels is not None:
        meta["labels"] = dataset.labels
    # every process writes its machine's cache (hosts need not share one) and reads it back at once
    stages.write_atomically(images_path, lambda f: np.save(f, dataset.images), every_process=True)
    stages.write_atomically(meta_path, lambda f: np.savez(f, **meta), every_process=True)
    return _open_cache(images_path, meta_path, cfg, digest)


# ---------------------------------------------------------------------------------------------
# Batching and device feeding.


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Full batches per epoch (the remainder is dropped)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if batch_size > n_images:
        raise ValueError(f"batch_size {batch_size} is larger than the {n_images} training images")
    return n_images // batch_size


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The image order of one epoch: a fixed function of (seed, epoch), different for every epoch."""
    return np.asarray(jax.random.permutation(jax.random.fold_in(make_key(seed), epoch), n))


_END = object()


def _prefetch_to_device(host_batches: Iterator[np.ndarray], place: Callable[[np.ndarray], Any], prefetch: int):
    """Yields place(batch) (a global device batch from this process's rows) of each host batch, gathered and
    placed `prefetch` ahead on a background thread."""
    if prefetch < 1:
        raise ValueError(f"prefetch must be >= 1, got {prefetch}")
    ready: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for batch in host_batches:
                if not put(place(batch)):
                    return
            put(_END)
        except Exception as e:  # handed to the consumer, which re-raises it
            put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def train_batches(
    images: np.ndarray, batch_size: int, seed: int, epoch: int, start_batch: int = 0, sharding=None, prefetch: int = 2
) -> Iterator[jax.Array]:
    """uint8 global batches of one epoch in epoch_permutation order (remainder dropped), from `start_batch`
    on so that a resumed run continues mid-epoch. Each process reads only its rows of every batch."""
    return stacked_train_batches([(images, seed)], batch_size, epoch, start_batch, sharding, prefetch, stacked=False)


def stacked_train_batches(
    groups: Sequence[tuple[np.ndarray | jax.Array, int]],
    batch_size: int,
    epoch: int,
    start_batch: int = 0,
    sharding=None,
    prefetch: int = 2,
    stacked: bool = True,
) -> Iterator[jax.Array]:
    """train_batches of several (images, seed) groups (models trained together), stacked as (groups, batch, ...)
    with the batch axis sharded as `sharding` shards a batch; `stacked=False` takes one group, unstacked. Images
    on the host are gathered there and copied per batch; images already on the devices (`place_on_devices`) are
    gathered there, by the same rows."""
    steps = min(steps_per_epoch(len(images), batch_size) for images, _ in groups)
    if not 0 <= start_batch <= steps:
        raise ValueError(f"start_batch {start_batch} is outside the {steps} batches of an epoch")
    orders = [epoch_permutation(len(images), seed, epoch) for images, seed in groups]
    place_sharding = sharding_lib.stacked(sharding) if stacked and sharding is not None else sharding
    if all(isinstance(images, jax.Array) for images, _ in groups):
        images = tuple(images for images, _ in groups)
        return _device_batches(images, orders, batch_size, range(start_batch, steps), place_sharding, stacked)
    mine = sharding_lib.process_rows(sharding, batch_size)

    def host_batch(b: int) -> np.ndarray:
        window = slice(b * batch_size, (b + 1) * batch_size)
        rows = [images[order[window][mine]] for (images, _), order in zip(groups, orders)]
        return np.stack(rows) if stacked else rows[0]

    shape = (len(groups), batch_size) if stacked else (batch_size,)
    host_batches = (host_batch(b) for b in range(start_batch, steps))
    return _prefetch_to_device(
        host_batches, lambda rows: sharding_lib.global_batch(rows, place_sharding, shape), prefetch
    )


def ordered_batches(
    images: np.ndarray, batch_size: int, sharding=None, prefetch: int = 2
) -> Iterator[tuple[jax.Array, int]]:
    """(global batch, n_valid) over all images in order; the last batch is zero-padded to batch_size so that
    jitted shapes stay fixed. Each process reads only its rows of every batch; images already on the devices
    are sliced there."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    starts = range(0, len(images), batch_size)
    if isinstance(images, jax.Array):  # on the devices (place_on_devices): sliced there
        return ((_padded_rows(images, s, batch_size, sharding), min(batch_size, len(images) - s)) for s in starts)
    mine = sharding_lib.process_rows(sharding, batch_size)

    def padded(start: int) -> np.ndarray:
        rows = np.asarray(images[start + mine.start : start + mine.stop])
        return np.pad(rows, [(0, mine.stop - mine.start - len(rows))] + [(0, 0)] * (rows.ndim - 1))

    place = lambda rows: sharding_lib.global_batch(rows, sharding, (batch_size,))  # noqa: E731
    device_batches = _prefetch_to_device((padded(s) for s in starts), place, prefetch)
    return ((batch, min(batch_size, len(images) - start)) for batch, start in zip(device_batches, starts))


# ---------------------------------------------------------------------------------------------
# Images held on the devices (data.placement).

AUTO_DEVICE_SHARE = 0.25  # data.placement=auto: on the devices when the images take at most this share of free memory


def free_device_bytes(devices: Sequence[jax.Device]) -> int:
    """The free memory of the fullest of `devices` (bytes_limit - bytes_in_use); CPU devices report none and share
    the host's memory, so the host's free memory (MemFree, not counting page cache) split between them."""
    stats = [device.memory_stats() for device in devices]
    if all(stats):
        return min(s["bytes_limit"] - s["bytes_in_use"] for s in stats)
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // len(devices)


def choose_placement(placement: str, needed: int, devices: Sequence[jax.Device]) -> str:
    """host or device for data.placement, `needed` being the bytes of images each device would hold: auto is
    device when they take at most AUTO_DEVICE_SHARE of the free memory in every process; device is refused,
    naming both, when they do not fit in some process."""
    if placement == "host":
        return "host"
    free = free_device_bytes(devices)
    if placement == "device":
        if sharding_lib.any_process(needed > free):
            raise DataError(
                f"data.placement=device: the training and held-out images need {needed:,} bytes on each device, and "
                f"{free:,} are free on {'the fullest' if len(devices) > 1 else 'the'} device (in this process, or "
                "less in another): set data.placement=host, or lower data.num_images or train.eval_images"
            )
        return "device"
    return "host" if sharding_lib.any_process(needed > AUTO_DEVICE_SHARE * free) else "device"


def place_on_devices(images: np.ndarray, mesh) -> jax.Array:
    """`images` copied once onto every device of `mesh` (replicated); each process copies onto its own devices."""
    return jax.make_array_from_callback(images.shape, sharding_lib.replicated(mesh), lambda index: images[index])


def _device_batches(
    images: tuple[jax.Array, ...], orders: list[np.ndarray], batch_size: int, batches: range, sharding, stacked: bool
) -> Iterator[jax.Array]:
    """The batches of `batches` gathered on the devices from replicated images: each device takes its rows of
    the batch (`orders`' rows, sharded as `sharding` shards the batch) from its own copy."""
    rows = np.stack([order[: batches.stop * batch_size].reshape(-1, batch_size) for order in orders]).astype(np.int32)
    if sharding is None:
        placed = jax.device_put(rows)
    else:
        row_sharding = sharding_lib.stacked(sharding if stacked else sharding_lib.stacked(sharding))  # (groups, b, row)
        placed = jax.make_array_from_callback(rows.shape, row_sharding, lambda index: rows[index])
    return (_gather_rows(images, placed, b, sharding, stacked) for b in batches)


@functools.partial(jax.jit, static_argnames=("sharding", "stacked"))
def _gather_rows(images: tuple[jax.Array, ...], rows: jax.Array, b, sharding, stacked: bool) -> jax.Array:
    """Batch b of each group (rows[group, b]) from that group's images, stacked unless one group is unstacked."""
    parts = [group[rows[g, b]] for g, group in enumerate(images)]
    batch = jnp.stack(parts) if stacked else parts[0]
    return batch if sharding is None else jax.lax.with_sharding_constraint(batch, sharding)


@functools.partial(jax.jit, static_argnames=("batch_size", "sharding"))
def _padded_rows(images: jax.Array, start, batch_size: int, sharding) -> jax.Array:
    """Rows start .. start + batch_size of device-held images, zeros past the end (as the host pads)."""
    rows = jnp.take(images, start + jnp.arange(batch_size), axis=0, mode="fill", fill_value=0)
    return rows if sharding is None else jax.lax.with_sharding_constraint(rows, sharding)


def to_unit(images):
    """uint8 images -> float32 in [0, 1], the scale the networks read (a numpy array stays numpy, a jax one jax)."""
    return images.astype(np.float32) / 255.0


def make_inputs(key: jax.Array, targets: jax.Array, task: str, noise_std: float, drop_rate: float) -> jax.Array:
    """The network input for `task` from float targets in [0, 1] (jittable with `task` static).

    reconstruct: the targets; denoise: Gaussian noise of std noise_std, then a drop_rate share of pixels
    zeroed in all channels, clipped to [0, 1]; recolor: the luminance repeated over the channels.
    """
    if task == "reconstruct":
        return targets
    if task == "denoise":
        noise_key, drop_key = jax.random.split(key)
        noisy = targets + noise_std * jax.random.normal(noise_key, targets.shape, targets.dtype)
        keep = jax.random.bernoulli(drop_key, 1.0 - drop_rate, targets.shape[:-1] + (1,))
        return jnp.clip(noisy * keep, 0.0, 1.0)
    if task == "recolor":
        if targets.shape[-1] != len(LUMA_WEIGHTS):
            raise ValueError(f"task recolor needs RGB targets, got {targets.shape[-1]} channels")
        luminance = targets @ jnp.asarray(LUMA_WEIGHTS, targets.dtype)
        return jnp.broadcast_to(luminance[..., None], targets.shape)
    raise ValueError(f"task {task!r} is not one of reconstruct, denoise, recolor")
