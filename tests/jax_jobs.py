"""Launching a job of several JAX processes on one machine for the tests: each process gets its own simulated CPU
devices and the JAX_COORDINATOR_* settings of one job (JAX's multi-controller runtime, gloo collectives over
127.0.0.1), or none of them for a single-process reference run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(code: str, args: list[str], devices: int, jit_cache: str, process: tuple[int, int, int] | None = None):
    """`python -c code *args` with `devices` CPU devices; `process` = (id, count, coordinator port) of a job, or None
    for a single process."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "AE_JAX_JIT_CACHE": jit_cache,
    }
    if process:
        index, count, port = process
        env.update(
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES=str(count),
            JAX_PROCESS_ID=str(index),
            AE_JAX_COORDINATOR_TIMEOUT="60",
        )
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def start_job(code: str, args: list[str], processes: int, devices: int, jit_cache: str) -> list[subprocess.Popen]:
    """`processes` processes of one job (one process: no job settings), each with `devices` CPU devices."""
    if processes == 1:
        return [start(code, args, devices, jit_cache)]
    port = free_port()
    return [start(code, args, devices, jit_cache, (i, processes, port)) for i in range(processes)]


def result(proc: subprocess.Popen, timeout: int = 300) -> dict | None:
    """The last JSON object the process printed on stdout (None if it printed none), once it has exited with 0."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]
    results = [line for line in out.decode().strip().splitlines() if line.startswith("{")]
    return json.loads(results[-1]) if results else None
