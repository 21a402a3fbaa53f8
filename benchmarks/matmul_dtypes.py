"""Matmul rate per operand and result dtype at case1's matmul shapes: does this CPU (and this jaxlib) have a fast
bfloat16 path? XLA:CPU hands bf16 x bf16 -> f32 dots to YNNPACK, whose bf16 kernels use AMX tiles on Intel
Xeons that have them; bf16 x bf16 -> bf16 dots are upcast to float32 (see "bfloat16 on CPU" in
benchmarks/README.md). PyTorch's float32 and bfloat16 matmuls are printed beside them where torch is installed.

Each figure is the best of --repeats calls after one warm-up call, in GFLOP/s; run it on idle cores.

    python benchmarks/matmul_dtypes.py [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from train_bench import best_seconds  # benchmarks/ is on sys.path when run as a script

# (M, K, N) of case1's train step at batch 64: the convolutions' patch matmuls, and a square one for reference
SHAPES = ((36864, 288, 64), (9216, 576, 128), (2304, 1152, 256), (2048, 2048, 2048))


def _best_of(call, repeats: int) -> float:
    call()  # compiles (jax) or warms the caches
    return best_seconds(call, repeats)


def jax_rates(a: np.ndarray, b: np.ndarray, repeats: int) -> dict[str, float]:
    flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
    x, y = jnp.asarray(a), jnp.asarray(b)
    xb, yb = x.astype(jnp.bfloat16), y.astype(jnp.bfloat16)
    product = jax.jit(jnp.matmul)
    to_f32 = jax.jit(lambda p, q: lax.dot(p, q, preferred_element_type=jnp.float32))
    runs = {
        "jax f32": lambda: product(x, y).block_until_ready(),
        "jax bf16->bf16": lambda: product(xb, yb).block_until_ready(),
        "jax bf16->f32": lambda: to_f32(xb, yb).block_until_ready(),
    }
    return {name: flops / _best_of(call, repeats) / 1e9 for name, call in runs.items()}


def torch_rates(a: np.ndarray, b: np.ndarray, repeats: int, threads: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    xb, yb = x.bfloat16(), y.bfloat16()
    runs = {"torch f32": lambda: x @ y, "torch bf16": lambda: xb @ yb}
    return {name: flops / _best_of(call, repeats) / 1e9 for name, call in runs.items()}


def cpu_name() -> str:
    """The CPU's model name and its AMX and AVX-512 bf16 flags (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    name = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    flags = sorted(set(re.findall(r"\b(amx_\w+|avx512_bf16)\b", info)))
    return f"{name.group(1) if name else platform.machine()} ({', '.join(flags) or 'no AMX or AVX-512 bf16'})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="PyTorch intra-op threads")
    args = p.parse_args(argv)
    has_torch = importlib.util.find_spec("torch") is not None
    print(f"{cpu_name()}, jax {jax.__version__} ({jax.default_backend()})")
    if not has_torch:
        print("torch is not installed: its columns are skipped")
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in SHAPES:
        a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
        rates = jax_rates(a, b, args.repeats)
        if has_torch:
            rates |= torch_rates(a, b, args.repeats, args.threads)
        rows.append((f"{m} x {k} x {n}", rates))
    names = list(rows[0][1])
    print("GFLOP/s, best of", args.repeats)
    print(f"{'M x K x N':<20}" + "".join(f"{name:>16}" for name in names))
    for shape, rates in rows:
        print(f"{shape:<20}" + "".join(f"{rates[name]:>16.0f}" for name in names))


if __name__ == "__main__":
    main()
