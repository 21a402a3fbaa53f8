"""Data parallelism over every device of every process: a Mesh with one "data" axis, batch sharded, params
replicated.

The same code runs on one CPU, one GPU, 8 simulated CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`) or several processes on several hosts (JAX's
multi-controller runtime: `initialize_distributed()` first in every process). Each process reads only its
rows of every global batch; whatever is written to disk is written by process 0 (`is_main()`).
"""

from __future__ import annotations

import os
import socket
import time

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

LAUNCH_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class DistributedError(RuntimeError):
    """A multi-process job cannot start; the message names the setting to change."""


def _launch_settings() -> dict:
    """jax.distributed.initialize's arguments from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    JAX_PROCESS_ID (all three, checked), or {} to let JAX detect SLURM or a TPU pod slice."""
    given = {name: os.environ.get(name, "") for name in LAUNCH_VARIABLES}
    if not given["JAX_COORDINATOR_ADDRESS"]:
        return {}
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise DistributedError(
            f"JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} is not: set all of {', '.join(LAUNCH_VARIABLES)}"
            " in every process (the same address and count everywhere, process ids 0 .. count-1)"
        )
    try:
        count, index = int(given["JAX_NUM_PROCESSES"]), int(given["JAX_PROCESS_ID"])
    except ValueError:
        raise DistributedError(
            f"JAX_NUM_PROCESSES={given['JAX_NUM_PROCESSES']!r} and JAX_PROCESS_ID={given['JAX_PROCESS_ID']!r} "
            "must be whole numbers"
        ) from None
    if not (count >= 1 and 0 <= index < count):
        raise DistributedError(f"JAX_PROCESS_ID={index} must be in 0 .. JAX_NUM_PROCESSES-1 = {count - 1}")
    return dict(coordinator_address=given["JAX_COORDINATOR_ADDRESS"], num_processes=count, process_id=index)


def _wait_for_coordinator(address: str, who: str, timeout: int) -> None:
    """Raise DistributedError unless the coordinator (process 0) accepts connections at `address` within
    `timeout` seconds: JAX's runtime would abort the process with no word of which setting is wrong."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            return
        except (OSError, ValueError) as e:
            if time.monotonic() >= deadline or isinstance(e, ValueError):
                raise DistributedError(
                    f"{who} could not reach the coordinator at JAX_COORDINATOR_ADDRESS={address} within {timeout} s "
                    f"({type(e).__name__}: {e}). Start process 0 with the same JAX_COORDINATOR_ADDRESS (host:port of "
                    "the machine running process 0, reachable from this one), check the port is open, or raise "
                    "AE_JAX_COORDINATOR_TIMEOUT if the processes start far apart"
                ) from None
            time.sleep(0.5)


def initialize_distributed() -> None:
    """Join a multi-process job when one is configured: JAX_COORDINATOR_ADDRESS (with JAX_NUM_PROCESSES and
    JAX_PROCESS_ID), SLURM or a TPU pod slice. Waits AE_JAX_COORDINATOR_TIMEOUT seconds (default 300) for the
    other processes. Call before any other JAX work."""
    settings = _launch_settings()
    if jax.distributed.is_initialized() or not (
        settings or os.environ.get("SLURM_JOB_ID") or os.environ.get("TPU_WORKER_HOSTNAMES")
    ):
        return
    timeout = int(os.environ.get("AE_JAX_COORDINATOR_TIMEOUT", "300"))
    if settings.get("process_id", 0) != 0:
        who = f"process {settings['process_id']} of {settings['num_processes']}"
        _wait_for_coordinator(settings["coordinator_address"], who, timeout)
    jax.distributed.initialize(**settings, initialization_timeout=timeout)


def data_mesh(devices=None) -> Mesh:
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def is_main() -> bool:
    """True in the process that writes files (process 0; the only one in a single-process run)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (a no-op in a single-process run)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def agreed(flag: bool) -> bool:
    """Process 0's `flag` in every process, so that all take the branch it takes (e.g. reuse a stage or compute
    it); every process must call it at the same point."""
    if jax.process_count() == 1:
        return flag
    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag, np.int32)))


def any_process(flag: bool) -> bool:
    """Whether `flag` is true in any process; every process must call it at the same point."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def process_rows(sharding: NamedSharding | None, n_rows: int) -> slice:
    """The rows of a global batch of `n_rows` that this process's devices hold under `sharding` (all of them
    without a sharding)."""
    if sharding is None:
        return slice(0, n_rows)
    starts_stops = {
        (index[0].start or 0, n_rows if index[0].stop is None else index[0].stop)
        for index in sharding.addressable_devices_indices_map((n_rows,)).values()
    }
    start, stop = min(a for a, _ in starts_stops), max(b for _, b in starts_stops)
    if sum(b - a for a, b in starts_stops) != stop - start:
        raise ValueError(f"this process's devices hold non-contiguous rows of the batch: {sorted(starts_stops)}")
    return slice(start, stop)


def stacked(sharding: NamedSharding) -> NamedSharding:
    """The sharding of a stack of batches (one per model trained together): the batch axis moves to axis 1."""
    return NamedSharding(sharding.mesh, P(None, *sharding.spec))


def global_batch(local: np.ndarray, sharding: NamedSharding | None, leading: tuple[int, ...]) -> jax.Array:
    """The global array whose leading axes are `leading` (the last of them the batch), assembled from this
    process's rows (`process_rows`); with no sharding, `local` (then all of it) on the default device."""
    if sharding is None:
        return jax.device_put(local)
    return jax.make_array_from_process_local_data(sharding, local, (*leading, *local.shape[len(leading) :]))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "train.batch_size") -> None:
    n = mesh.devices.size
    if batch_size % n:
        processes = f" over {jax.process_count()} processes" if jax.process_count() > 1 else ""
        raise ValueError(
            f"{key}={batch_size} must be divisible by the number of devices ({n}{processes}); "
            f"try {key}={max(n, batch_size // n * n)}"
        )
