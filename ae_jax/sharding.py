"""Data parallelism over every local device: a Mesh with one "data" axis, batch sharded, params replicated.

The same code runs on one CPU, one GPU, 8 simulated CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`) or a multi-host pod slice (call
`initialize_distributed()` first on every host).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def initialize_distributed() -> None:
    """Join a multi-host job when launched by a cluster launcher (SLURM, TPU pod, JAX_COORDINATOR_ADDRESS)."""
    if jax.process_count() == 1 and (
        os.environ.get("JAX_COORDINATOR_ADDRESS")
        or os.environ.get("SLURM_JOB_ID")
        or os.environ.get("TPU_WORKER_HOSTNAMES")
    ):
        jax.distributed.initialize()


def data_mesh(devices=None) -> Mesh:
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "train.batch_size") -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"{key}={batch_size} must be divisible by the number of devices ({n}); try {max(n, batch_size // n * n)}"
        )
