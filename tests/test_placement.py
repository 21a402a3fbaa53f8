"""data.placement: training (and held-out) images held on the devices give the host feeder's batches, and a run
that trains bit for bit as with the host; images that do not fit are refused naming the bytes."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from ae_jax import config as C
from ae_jax import sharding
from ae_jax.data import datasets
from ae_jax.train.loop import load_run, train


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 3), np.uint8)


@pytest.mark.parametrize("stacked", [False, True], ids=["one group", "two groups"])
def test_batches_gathered_on_the_devices_are_the_host_feeders(stacked):
    mesh = sharding.data_mesh()
    groups = [(_images(37, 0), 3), (_images(41, 1), 5)][: 2 if stacked else 1]
    on_devices = [(datasets.place_on_devices(images, mesh), seed) for images, seed in groups]
    batch_sharding = sharding.batch_sharding(mesh)
    for epoch, start in ((0, 0), (2, 3)):  # a later epoch, resumed mid-epoch
        host = datasets.stacked_train_batches(groups, 8, epoch, start, batch_sharding, stacked=stacked)
        device = datasets.stacked_train_batches(on_devices, 8, epoch, start, batch_sharding, stacked=stacked)
        pairs = list(zip(host, device, strict=True))
        assert len(pairs) == 4 - start
        for a, b in pairs:
            assert b.sharding.is_equivalent_to(a.sharding, a.ndim)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_held_out_batches_on_the_devices_are_padded_as_on_the_host():
    mesh = sharding.data_mesh()
    images = _images(19, 2)
    host = list(datasets.ordered_batches(images, 8, sharding.batch_sharding(mesh)))
    device = list(datasets.ordered_batches(datasets.place_on_devices(images, mesh), 8, sharding.batch_sharding(mesh)))
    assert [n for _, n in device] == [n for _, n in host] == [8, 8, 3]
    for (a, _), (b, _) in zip(host, device):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_run_with_data_on_the_devices_trains_bit_for_bit_as_on_the_host(tmp_path, log_messages):
    results, params = {}, {}
    for placement in ("host", "device"):
        config = C.load("tiny", [f"workdir={tmp_path}", f"name={placement}", f"data.placement={placement}"])
        results[placement] = train(C.override(config, ["train.epochs=2"]))
        params[placement] = jax.tree.leaves(load_run(config.run_dir)[2])
        assert f"data.placement={placement}: " in "\n".join(log_messages)
        assert f"bytes of images gathered on the {placement}" in "\n".join(log_messages)
    for key in ("train_loss", "eval_loss", "eval_mse"):
        assert results["host"][key] == results["device"][key]
    for a, b in zip(params["host"], params["device"]):
        np.testing.assert_array_equal(a, b)
    assert os.path.isfile(results["device"]["reconstruction_grid"])


def test_placement_auto_takes_the_devices_while_the_images_fit(monkeypatch):
    devices = jax.local_devices()
    monkeypatch.setattr(datasets, "free_device_bytes", lambda devices: 1000)
    assert datasets.choose_placement("auto", 250, devices) == "device"
    assert datasets.choose_placement("auto", 251, devices) == "host"
    assert datasets.choose_placement("host", 1, devices) == "host"
    assert datasets.choose_placement("device", 1000, devices) == "device"
    with pytest.raises(datasets.DataError, match="need 1,001 bytes on each device, and 1,000 are free"):
        datasets.choose_placement("device", 1001, devices)


class _Device:
    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


def test_free_memory_is_the_fullest_devices_and_cpus_split_the_hosts(monkeypatch):
    accelerators = [_Device({"bytes_limit": 100, "bytes_in_use": used}) for used in (10, 30)]
    assert datasets.free_device_bytes(accelerators) == 70
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}[name])
    assert datasets.free_device_bytes([_Device(None)] * 4) == 1000 * 4096 // 4


def test_data_on_the_devices_that_does_not_fit_is_refused_before_training(tmp_path, monkeypatch, capsys):
    from ae_jax.cli import main

    monkeypatch.setattr(datasets, "free_device_bytes", lambda devices: 1024)
    args = ["train", "--config", "tiny", "--set", f"workdir={tmp_path}", "--set", "data.placement=device"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "data.placement=device: the training and held-out images need" in err and "1,024 are free" in err
    assert not os.path.isdir(tmp_path / "tiny" / "ckpt")
