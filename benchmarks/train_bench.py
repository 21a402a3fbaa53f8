"""Training throughput of ae_jax against PyTorch and Keras twins of the same network, plus encoding throughput.

One invocation runs, each in its own process so thread pools and allocators do not interfere: the machine's
f32 matmul peak (best of numpy and jnp), ae_jax's jitted train step (after warm-up, a fresh uint8 batch per
step), benchmarks/torch_reference.py and benchmarks/keras_reference.py (skipped, with a line saying so, when
the framework is not installed), and ae_jax's encoder forward pass. It prints a table:

    python benchmarks/train_bench.py                      # case1 AE, 96x96x3, batch 64
    python benchmarks/train_bench.py --steps 50 --only ae_jax --bf16   # bfloat16 compute

FLOPs per image come from XLA's cost analysis of the ae_jax train step and are used for every framework
(the twins compute the same network).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import steady  # benchmarks/ is on sys.path when run as a script

from ae_jax import allocator

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCES = {"pytorch": ("torch", "torch_reference.py"), "keras": ("keras", "keras_reference.py")}
FRAMEWORKS = ("ae_jax", *REFERENCES)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="case1", help="ae_jax preset or JSON config (default: case1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="ae_jax config override")
    p.add_argument("--batch", type=int, default=64, help="training batch size")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per framework")
    steady.add_warmup_argument(p)
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every framework this many times, interleaved, and keep each one's best (busy machines)",
    )
    p.add_argument("--encode-batch", type=int, default=256, help="batch of the encoding throughput line")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="ae_jax computes in bfloat16 (model.dtype): on CPUs still slower than float32 (benchmarks/README.md)",
    )
    p.add_argument("--only", default=",".join(FRAMEWORKS), help=f"comma-separated subset of {', '.join(FRAMEWORKS)}")
    p.add_argument(
        "--threads", type=int, default=0, help="PyTorch/Keras intra-op threads (0: as many as usable cores, like XLA)"
    )
    p.add_argument("--cpus", default="", help="pin every framework to these CPU ids, e.g. 1 or 0,1 (Linux)")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help=f"do not set GLIBC_TUNABLES={':'.join(allocator.TUNABLES)} (set for every framework by default)",
    )
    p.add_argument("--worker", choices=("ae_jax", "peak"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        args.cpus = {int(c) for c in args.cpus.split(",")} if args.cpus else None
    except ValueError:
        p.error(f"--cpus must be comma-separated CPU ids, got {args.cpus!r}")
    if args.cpus and not args.cpus <= os.sched_getaffinity(0):
        p.error(f"--cpus {sorted(args.cpus)} not all usable; usable: {sorted(os.sched_getaffinity(0))}")
    unknown = set(args.only.split(",")) - set(FRAMEWORKS)
    if unknown:
        p.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from {', '.join(FRAMEWORKS)}")
    for key in ("batch", "steps", "encode_batch", "rounds"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# Workers (run in subprocesses).


def best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return best


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Best f32 GFLOP/s of an n^3 matmul in numpy and in jitted jnp: what this machine's cores can do."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    a, b = np.random.default_rng(0).random((2, n, n), dtype=np.float32)
    matmul = jax.jit(jnp.matmul)
    ja, jb = jax.device_put(a), jax.device_put(b)
    matmul(ja, jb).block_until_ready()
    seconds = {
        "numpy": best_seconds(lambda: a @ b, repeats),
        "jnp": best_seconds(lambda: matmul(ja, jb).block_until_ready(), repeats),
    }
    return {name: 2 * n**3 / s / 1e9 for name, s in seconds.items()}


def ae_jax_worker(args: argparse.Namespace) -> dict:
    """Time ae_jax's train step and encoder; FLOPs per image from XLA's cost analysis of the step."""
    import jax
    import numpy as np

    from ae_jax import config as config_lib
    from ae_jax import sharding
    from ae_jax.train import loop

    overrides = [*args.set, f"train.batch_size={args.batch}"] + (["model.dtype=bfloat16"] if args.bf16 else [])
    config = config_lib.load(args.config, overrides)
    mesh = sharding.data_mesh()
    sharding.check_batch_size(args.batch, mesh, "--batch")
    model, tx, state = loop.create_train_state(config, jax.random.key(config.seed))
    state = jax.device_put(state, sharding.replicated(mesh))
    train_step = loop.make_train_step(model, tx, config, mesh)
    shape = loop.image_shape(config)
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (args.batch, *shape), np.uint8) for _ in range(4)]  # fresh batch every step
    batches = (jax.device_put(pool[i % len(pool)], sharding.batch_sharding(mesh)) for i in range(10**9))
    key = jax.random.key(1)
    cost = train_step.lower(state, next(batches), key).compile().cost_analysis()
    flops = (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"] / args.batch

    def step():
        nonlocal state
        state, metrics = train_step(state, next(batches), key)
        return metrics

    warmup_steps = steady.warm_up(step, jax.block_until_ready, args.warmup)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        metrics = step()
    jax.block_until_ready(metrics)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    encode = jax.jit(lambda params, images: model.apply({"params": params}, images, method=model.encode))
    images = jax.device_put(rng.random((args.encode_batch, *shape), np.float32), sharding.batch_sharding(mesh))
    encode(state.params, images).block_until_ready()
    encode_seconds = best_seconds(lambda: encode(state.params, images).block_until_ready(), max(3, args.steps // 4))
    return {
        "framework": f"ae_jax (jax {jax.__version__}, {jax.default_backend()}, {config.model.dtype})",
        "images_per_s": args.batch * args.steps / wall,
        "ms_per_step": 1e3 * wall / args.steps,
        "cpu_ms_per_step": 1e3 * cpu / args.steps,
        "flops_per_image": flops,
        "warmup_steps": warmup_steps,
        "loss": float(metrics["loss"]),
        "encode_images_per_s": args.encode_batch / encode_seconds,
    }


# ---------------------------------------------------------------------------------------------
# Driver.


def _run_json(command: list[str], env: dict, cpus: set[int] | None) -> dict:
    """Run a worker (pinned to `cpus` if given); its last stdout line is JSON. Raise with its stderr on failure."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    done = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=pin)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def _worker_command(args: argparse.Namespace, worker: str) -> list[str]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        worker,
        "--config",
        args.config,
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--encode-batch",
        str(args.encode_batch),
    ]
    for item in args.set:
        command += ["--set", item]
    return command + (["--bf16"] if args.bf16 else [])


def _reference_command(args: argparse.Namespace, script: str) -> list[str]:
    return [
        sys.executable,
        os.path.join(HERE, script),
        "--config",
        args.config,
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads or (len(args.cpus) if args.cpus else 0)),
    ]


def format_table(rows: list[dict], flops_per_image: float | None, peak: float) -> str:
    """Framework, images/s, ms/step, GFLOP/image, achieved GFLOP/s, share of the matmul peak, speed vs best ref."""
    best_ref = max((r["images_per_s"] for r in rows if not r["framework"].startswith("ae_jax")), default=None)
    header = ["framework", "images/s", "ms/step", "CPU ms/step", "GFLOP/img", "GFLOP/s", "% peak", "vs best ref"]
    table = [header]
    for r in rows:
        rate = r["images_per_s"]
        gflops = rate * flops_per_image / 1e9 if flops_per_image else None
        table.append(
            [
                r["framework"],
                f"{rate:.1f}",
                f"{r['ms_per_step']:.1f}",
                f"{r['cpu_ms_per_step']:.1f}",
                f"{flops_per_image / 1e9:.3f}" if flops_per_image else "-",
                f"{gflops:.1f}" if gflops else "-",
                f"{100 * gflops / peak:.0f}%" if gflops else "-",
                f"{rate / best_ref:.2f}x" if best_ref else "-",
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    align = [str.ljust] + [str.rjust] * (len(header) - 1)
    return "\n".join("  ".join(a(cell, w) for a, cell, w in zip(align, row, widths)) for row in table)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker == "peak":
        print(json.dumps(matmul_peak()))
        return
    if args.worker == "ae_jax":
        print(json.dumps(ae_jax_worker(args)))
        return

    env = allocator.tuned_env(dict(os.environ), on=not args.default_malloc)
    chosen = args.only.split(",")
    print(
        f"config {args.config}, batch {args.batch}, {args.steps} timed steps after >= {args.warmup} warm-up, "
        f"CPUs {sorted(args.cpus) if args.cpus else f'all {os.cpu_count()}'}, "
        f"GLIBC_TUNABLES={env.get('GLIBC_TUNABLES', '')!r}",
        flush=True,
    )
    for name in [n for n in chosen if n in REFERENCES and importlib.util.find_spec(REFERENCES[n][0]) is None]:
        print(f"{name}: skipped, {REFERENCES[name][0]} is not installed (pip install -e .[bench])", flush=True)
        chosen.remove(name)
    best: dict[str, dict] = {}
    peaks: dict[str, float] = {}
    for _ in range(args.rounds):  # the peak too: on a shared machine a later round may find the cores idle
        for library, rate in _run_json(_worker_command(args, "peak"), env, args.cpus).items():
            peaks[library] = max(rate, peaks.get(library, 0.0))
        for name in chosen:
            command = (
                _worker_command(args, "ae_jax") if name == "ae_jax" else _reference_command(args, REFERENCES[name][1])
            )
            result = _run_json(command, env, args.cpus)
            warmup = f" (timed after {result['warmup_steps']} warm-up steps)" if "warmup_steps" in result else ""
            print(f"{result['framework']}: {result['images_per_s']:.1f} images/s{warmup}", flush=True)
            if name not in best or result["images_per_s"] > best[name]["images_per_s"]:
                best[name] = result
    rows = [best[name] for name in chosen]
    flops_per_image = best["ae_jax"]["flops_per_image"] if "ae_jax" in best else None
    print("\nf32 matmul peak, 2048^3, best round: " + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()) + " GFLOP/s")
    print(format_table(rows, flops_per_image, max(peaks.values())))
    if "ae_jax" in best:
        print(
            f"ae_jax encoding (encoder forward, batch {args.encode_batch}): "
            f"{best['ae_jax']['encode_images_per_s']:.0f} images/s"
        )


if __name__ == "__main__":
    main()
