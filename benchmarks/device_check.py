"""Accelerator check: ae_jax against PyTorch on one device, the full training loop with data on the host and
on the device, the arms programs, the demo study end to end and the statistics suite.

One command (`bash benchmarks/device_check.sh OUTDIR [--tiny]`) measures, each part in its own process (so
JAX's and PyTorch's device memory pools do not meet), in this order (the most wanted first, so that a run cut
short keeps them):

- jax: case1 train step images/s at batch 256 and 1024, float32 and bfloat16 (model.dtype), ae_jax's real
  step (`loop.make_train_step`, conv_impl auto: Flax convolutions on a GPU) on batches already on the device;
  encoder forward images/s; matmul peaks of the device in both dtypes; FLOPs per image from XLA's cost analysis;
- loop: benchmarks/loop_bench.py, case1 on embedded faces at 96 px: the bare step against the full training
  loop (`ae_jax.train.loop.train`) with data.placement=host and =device: does the host hold the device back?
- arms: benchmarks/arms_bench.py, each train.arms_program at 1, 4 and 16 arms, the faces preset and case1;
- demo: `ae-jax demo` (the demo study at its full size) end to end, seconds;
- torch: the same network in PyTorch (benchmarks/torch_reference.py) on the same device: eager channels_last
  in float32 and with bf16 autocast (then, after the statistics, torch.compile);
- stats: benchmarks/stats_bench.py on 1,000,000 x 256 z-points.

It writes OUTDIR/device_check.md (one table), OUTDIR/device_check.json (every number), each part's log and
the demo's study folder OUTDIR/demo, and prints the table (the loop's run folders are temporary).
Parts run in priority order under one time budget; a part that would not fit, or that fails, leaves a row
saying so. --tiny shrinks every size so a CPU runs it end to end in a few minutes.
Needs jax, flax, optax, orbax-checkpoint, numpy, matplotlib, tqdm (torch for its rows); never imports
tensorflow-datasets or openTSNE.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Dense (no sparsity) peaks, TFLOP/s, by device kind: (bfloat16, float32 as TF32). Float32 rows are set
# against the TF32 peak: XLA runs float32 convolutions and matmuls on TF32 tensor cores by default, and
# PyTorch its float32 convolutions (cudnn.allow_tf32 defaults to True).
SPEC_PEAKS = {"H200": (989.0, 494.0), "H100": (989.0, 494.0), "A100": (312.0, 156.0)}

SIZES = {
    "full": dict(
        batches=(256, 1024),
        steps=50,
        warmup=5,
        peak_n=8192,
        loop_images=32768,
        loop_batch=256,
        loop_epochs=2,
        arms=(1, 4, 16),
        arms_steps=10,
        arms_settings=(),
        stats_n=1_000_000,
        stats_repeats=3,
        budget_s=450,
    ),
    "tiny": dict(
        batches=(8, 16),
        steps=2,
        warmup=1,
        peak_n=512,
        loop_images=192,
        loop_batch=16,
        loop_epochs=1,
        arms=(1, 2),
        arms_steps=2,
        arms_settings=("--set", "train.batch_size=8"),
        stats_n=20_000,
        stats_repeats=1,
        budget_s=1800,
    ),
}
DTYPES = ("float32", "bfloat16")
ARMS_PRESETS = ("faces", "case1")


def _sizes(tiny: bool) -> dict:
    return SIZES["tiny" if tiny else "full"]


def _spec_peak(device_kind: str, dtype: str) -> float | None:
    for name, (bf16, tf32) in SPEC_PEAKS.items():
        if name in device_kind:
            return bf16 if dtype == "bfloat16" else tf32
    return None


# ---------------------------------------------------------------------------------------------
# Parts (each runs in its own process and prints one JSON line last).


def part_jax(size: dict) -> dict:
    """Matmul peaks, then the train step and the encoder at every batch and dtype."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ae_jax import config as config_lib
    from ae_jax import sharding
    from ae_jax.train import loop

    def best_seconds(fn, args: tuple, repeats: int) -> float:
        jax.block_until_ready(fn(*args))
        best = float("inf")
        for _ in range(repeats):
            tic = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best = min(best, time.perf_counter() - tic)
        return best

    device = jax.devices()[0]
    out = {
        "device_kind": device.device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "peaks": {},
        "rows": [],
    }
    n = size["peak_n"]
    for dtype in DTYPES:
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.dtype(dtype))
        out["peaks"][dtype] = 2 * n**3 / best_seconds(jax.jit(jnp.matmul), (a, a), 5) / 1e12

    mesh = sharding.data_mesh()
    rows = []
    for dtype in DTYPES:
        for batch in size["batches"]:
            config = config_lib.load("case1", [f"train.batch_size={batch}", f"model.dtype={dtype}"])
            model, tx, state = loop.create_train_state(config, jax.random.key(config.seed))
            state = jax.device_put(state, sharding.replicated(mesh))
            step = loop.make_train_step(model, tx, config, mesh)
            shape = (batch, *loop.image_shape(config))
            rng = np.random.default_rng(0)
            placed = sharding.batch_sharding(mesh)
            pool = [jax.device_put(rng.integers(0, 256, shape, np.uint8), placed) for _ in range(2)]
            key = jax.random.key(1)
            tic = time.perf_counter()
            compiled = step.lower(state, pool[0], key).compile()
            compile_s = time.perf_counter() - tic
            cost = compiled.cost_analysis()
            flops = (cost[0] if isinstance(cost, (list, tuple)) else cost or {}).get("flops", 0.0) / batch or None
            for i in range(size["warmup"]):
                state, metrics = step(state, pool[i % 2], key)
            jax.block_until_ready(metrics)
            tic = time.perf_counter()
            for i in range(size["steps"]):
                state, metrics = step(state, pool[i % 2], key)
            jax.block_until_ready(metrics)
            wall = time.perf_counter() - tic
            encode = jax.jit(lambda p, x, model=model: model.apply({"params": p}, x, method=model.encode))
            images = jax.device_put(rng.random(shape, np.float32), placed)
            encode_s = best_seconds(encode, (state.params, images), max(3, size["steps"] // 5))
            rows.append(
                {
                    "dtype": dtype,
                    "batch": batch,
                    "images_per_s": batch * size["steps"] / wall,
                    "ms_per_step": 1e3 * wall / size["steps"],
                    "flops_per_image": flops,
                    "compile_s": compile_s,
                    "loss": float(metrics["loss"]),
                    "encode_images_per_s": batch / encode_s,
                }
            )
            out["rows"] = rows
            print(json.dumps(out), flush=True)  # the rows so far, should the part run out of time
    return out


def _loop_command(size: dict) -> list[str]:
    """benchmarks/loop_bench.py on case1 with embedded faces at 96 px (bare step, host loop, device loop)."""
    return [
        sys.executable,
        os.path.join(HERE, "loop_bench.py"),
        "--config",
        "case1",
        "--images",
        str(size["loop_images"]),
        "--epochs",
        str(size["loop_epochs"]),
        "--steps",
        str(size["steps"]),
        "--set",
        f"train.batch_size={size['loop_batch']}",
        "--set",
        f"train.eval_images={min(1024, size['loop_images'] // 10)}",
    ]


def _arms_command(size: dict, preset: str) -> list[str]:
    """benchmarks/arms_bench.py: every arms program at size['arms'] arms of `preset`."""
    arms = ",".join(map(str, size["arms"]))
    command = [sys.executable, os.path.join(HERE, "arms_bench.py"), "--config", preset, "--arms", arms]
    return command + ["--steps", str(size["arms_steps"]), *size["arms_settings"]]


def part_demo(tiny: bool, out_dir: str) -> dict:
    """`ae-jax demo` (--quick when tiny) into OUTDIR/demo, timed end to end."""
    from loop_bench import tensorboardx_or_stand_in

    from ae_jax.cli import main

    tensorboardx = tensorboardx_or_stand_in()
    tic = time.perf_counter()
    status = main(["demo", "--out", os.path.join(out_dir, "demo")] + (["--quick"] if tiny else []))
    return {"status": status, "seconds": time.perf_counter() - tic, "tensorboardx": tensorboardx}


# ---------------------------------------------------------------------------------------------
# Driver.


def _env() -> dict:
    from ae_jax import allocator  # CPU dry runs: the same malloc settings as train_bench.py

    env = allocator.tuned_env(dict(os.environ))
    env["PYTHONPATH"] = os.pathsep.join([ROOT, HERE, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(name: str, command: list[str], out_dir: str, timeout: float) -> tuple[dict | None, str]:
    """Run one part; (its last JSON stdout line, or None; a note). A part stopped by the time budget or failing
    may still have printed partial results (the jax part prints its rows so far after each one): those are
    kept, and the note says so. Logs go to OUTDIR/<name>.log."""
    if timeout < 10:
        return None, "skipped: time budget spent"
    tic = time.perf_counter()
    with open(os.path.join(out_dir, f"{name}.log"), "w") as log:
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, env=_env(), timeout=timeout)
            stdout, note = done.stdout, "" if done.returncode == 0 else f"failed (exit {done.returncode})"
        except subprocess.TimeoutExpired as stopped:
            stdout = stopped.output.decode() if isinstance(stopped.output, bytes) else stopped.output or ""
            note = f"stopped after {timeout:.0f} s (time budget)"
        log.write(stdout)
    seconds = time.perf_counter() - tic
    print(f"[{name}: {seconds:.0f} s{', ' + note if note else ''}]", flush=True)
    for line in reversed(stdout.strip().splitlines()):
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        return result, (f"incomplete: {note}; see {name}.log" if note else f"{seconds:.0f} s")
    return None, f"{note or 'no result line'}; see {name}.log"


def _self(part: str, out_dir: str, tiny: bool) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), out_dir, "--part", part] + (["--tiny"] if tiny else [])


def _torch_runs(size: dict, tiny: bool, device: str) -> list[tuple[str, int, list[str]]]:
    """(name, batch, extra args) of the PyTorch rows, most wanted first (compiled ones last: slow to build)."""
    runs = []
    for variant, extra in (("eager f32", []), ("eager bf16", ["--amp", "bf16"])):
        runs += [(variant, b, extra) for b in size["batches"]]
    compiled = [("compiled bf16", ["--amp", "bf16", "--compile"]), ("compiled f32", ["--compile"])]
    for variant, extra in compiled[:1] if tiny else compiled:
        runs += [(variant, b, extra) for b in (size["batches"][:1] if tiny else size["batches"])]
    return runs


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def build_table(results: dict) -> list[list[str]]:
    """One table: training, encoding, the full loop, the statistics suite."""
    header = ["part", "configuration", "images/s", "time", "TFLOP/s", "% spec peak", "% matmul peak", "note"]
    table = [header]
    jax_part = results.get("jax") or {}
    kind = jax_part.get("device_kind", "?")
    peaks = jax_part.get("peaks", {})
    flops = {}  # (dtype, batch) -> FLOPs per image of ae_jax's step
    bare = {}
    for r in jax_part.get("rows", []):
        flops[r["dtype"], r["batch"]] = r["flops_per_image"]
        bare[r["dtype"], r["batch"]] = r["images_per_s"]

    def rate_cells(images_per_s: float | None, dtype: str, batch: int) -> list[str]:
        f = flops.get((dtype, batch)) or flops.get(("float32", batch))
        tflops = images_per_s * f / 1e12 if images_per_s and f else None
        spec, measured = _spec_peak(kind, dtype), peaks.get(dtype)
        return [
            _fmt(tflops, 2),
            f"{100 * tflops / spec:.1f}%" if tflops and spec else "-",
            f"{100 * tflops / measured:.1f}%" if tflops and measured else "-",
        ]

    for r in jax_part.get("rows", []):
        table.append(
            [
                "ae_jax train step",
                f"batch {r['batch']}, {r['dtype']}",
                _fmt(r["images_per_s"]),
                f"{r['ms_per_step']:.2f} ms/step",
                *rate_cells(r["images_per_s"], r["dtype"], r["batch"]),
                f"compile {r['compile_s']:.0f} s",
            ]
        )
    if not jax_part.get("rows") or results.get("jax_note", "").startswith("incomplete"):
        table.append(["ae_jax train step", "(the rest)", "-", "-", "-", "-", "-", results.get("jax_note", "")])
    for t in results.get("torch", []):
        r, dtype = t.get("result"), "bfloat16" if "bf16" in t["variant"] else "float32"
        vs = bare.get((dtype, t["batch"]))
        note = t["note"] if r is None else (f"{r['images_per_s'] / vs:.2f}x ae_jax" if vs else "")
        table.append(
            [
                f"PyTorch {t['variant']}",
                f"batch {t['batch']}, {dtype}",
                _fmt(r and r["images_per_s"]),
                f"{r['ms_per_step']:.2f} ms/step" if r else "-",
                *(rate_cells(r["images_per_s"], dtype, t["batch"]) if r else ["-"] * 3),
                note,
            ]
        )
    for r in jax_part.get("rows", []):
        table.append(
            [
                "ae_jax encoder forward",
                f"batch {r['batch']}, {r['dtype']}",
                _fmt(r["encode_images_per_s"]),
                f"{1e3 * r['batch'] / r['encode_images_per_s']:.2f} ms/batch",
                *["-"] * 4,
            ]
        )
    loop = results.get("loop")
    if loop:
        batch, bare_loop = loop["batch"], loop["bare_step"]
        for name, label in (
            ("bare_step", "bare step"),
            ("host_loop", "data.placement=host"),
            ("device_loop", "data.placement=device"),
        ):
            note = f"{loop[name] / bare_loop:.2f}x the bare step"
            if name != "bare_step" and loop["tensorboardx"] != "installed":
                note += f"; tensorboardX {loop['tensorboardx']}"
            table.append(
                [
                    f"ae-jax train loop (faces {loop['image_size']} px)",
                    f"{label}, batch {batch}, float32",
                    _fmt(loop[name]),
                    "-",
                    *rate_cells(loop[name], "float32", batch),
                    note,
                ]
            )
    else:
        table.append(["ae-jax train loop", "-", "-", "-", "-", "-", "-", results.get("loop_note", "")])
    for preset in ARMS_PRESETS:
        arms, note = results.get(f"arms_{preset}"), results.get(f"arms_{preset}_note", "")
        if not arms:
            table.append([f"arms ({preset})", "-", "-", "-", "-", "-", "-", note])
            continue
        one = next((r["images_per_s_total"] for r in arms["rows"] if r["arms"] == 1), None)
        for r in arms["rows"]:
            vs = f"{r['images_per_s_total'] / one:.2f}x one model in all" if one else ""
            configuration = f"{r['arms']} arms, {r['program']}, batch {arms['batch']}"
            table.append([f"arms ({preset})", configuration, _fmt(r["images_per_s_total"]), "-", "-", "-", "-", vs])
    demo = results.get("demo")
    if demo:
        note = f"exit {demo['status']}" + ("" if demo["tensorboardx"] == "installed" else "; tensorboardX stand-in")
        table.append(["ae-jax demo", "end to end", "-", f"{demo['seconds']:.0f} s", "-", "-", "-", note])
    else:
        table.append(["ae-jax demo", "end to end", "-", "-", "-", "-", "-", results.get("demo_note", "")])
    stats = results.get("stats")
    n = f"{results['sizes']['stats_n']:,} x 256"
    if stats:
        for name, seconds in [*stats["jax"].items(), ("total", sum(stats["jax"].values()))]:
            np_s = stats["numpy"].get(name, sum(stats["numpy"].values()))
            note = f"numpy {np_s:.3f} s on the host"
            if name == "total":
                note += f"; counts equal numpy's: {stats['histogram counts equal']}"
                note += f", covariance max rel diff {stats['covariance max rel diff']:.1e}"
            table.append([f"stats ({n})", name, "-", f"{seconds:.4f} s", "-", "-", "-", note])
    else:
        table.append([f"stats ({n})", "-", "-", "-", "-", "-", "-", results.get("stats_note", "")])
    return table


def format_markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "| " + " | ".join("---" for _ in table[0]) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table[1:]])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", help="folder for the tables and logs (created)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a CPU dry run of every part")
    p.add_argument("--part", choices=("jax", "demo"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    size = _sizes(args.tiny)
    out_dir = os.path.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    if args.part == "jax":
        print(json.dumps(part_jax(size)))
        return
    if args.part == "demo":
        print(json.dumps(part_demo(args.tiny, out_dir)))
        return

    deadline = time.perf_counter() + size["budget_s"]
    results: dict = {"sizes": size, "argv": sys.argv[1:], "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}

    def left(share: float = 1.0) -> float:
        return share * (deadline - time.perf_counter())

    results["jax"], results["jax_note"] = _run("jax", _self("jax", out_dir, args.tiny), out_dir, left(0.3))
    results["loop"], results["loop_note"] = _run("loop", _loop_command(size), out_dir, left(0.35))
    for preset, share in zip(ARMS_PRESETS, (0.3, 0.35)):
        key = f"arms_{preset}"
        results[key], results[f"{key}_note"] = _run(key, _arms_command(size, preset), out_dir, left(share))
    results["demo"], results["demo_note"] = _run("demo", _self("demo", out_dir, args.tiny), out_dir, left(0.5))
    torch_runs = []
    try:
        import torch

        results["torch_version"] = torch.__version__
        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        device = "none"
    runs = _torch_runs(size, args.tiny, device)
    later = runs[4:]  # compiled runs go after the statistics
    for variant, batch, extra in runs[:4]:
        torch_runs.append(_torch_part(variant, batch, extra, size, device, out_dir, left(0.15)))
    stats_cmd = [
        sys.executable,
        os.path.join(HERE, "stats_bench.py"),
        "--n",
        str(size["stats_n"]),
        "--repeats",
        str(size["stats_repeats"]),
        "--numpy-repeats",
        "1",
        "--json",
    ]
    results["stats"], results["stats_note"] = _run("stats", stats_cmd, out_dir, left(0.5))
    for variant, batch, extra in later:
        torch_runs.append(_torch_part(variant, batch, extra, size, device, out_dir, left(0.5)))
    results["torch"] = torch_runs
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    table = format_markdown(build_table(results))
    jax_part = results["jax"] or {}
    title = (
        f"ae_jax device check{' (tiny sizes)' if args.tiny else ''}: {jax_part.get('device_kind', '?')} "
        f"({jax_part.get('backend', '?')}), jax {jax_part.get('jax', '?')}, torch {results.get('torch_version', '-')}"
        f", {results['started']} - {results['finished']}"
    )
    peaks = ", ".join(f"{k} {v:.2f}" for k, v in jax_part.get("peaks", {}).items())
    text = f"{title}\n\nmatmul peak ({size['peak_n']}^3, jnp default precision): {peaks} TFLOP/s\n\n{table}\n"
    with open(os.path.join(out_dir, "device_check.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "device_check.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\n" + text)


def _torch_part(variant: str, batch: int, extra: list[str], size: dict, device: str, out_dir: str, timeout: float):
    entry = {"variant": variant, "batch": batch, "result": None}
    if device == "none":
        entry["note"] = "skipped: torch (with this device) not installed"
        return entry
    command = [
        sys.executable,
        os.path.join(HERE, "torch_reference.py"),
        "--config",
        "case1",
        "--device",
        device,
        "--batch",
        str(batch),
        "--steps",
        str(size["steps"]),
        "--warmup",
        str(size["warmup"]),
        *extra,
    ]
    name = f"torch_{variant.replace(' ', '_')}_{batch}"
    entry["result"], entry["note"] = _run(name, command, out_dir, timeout)
    return entry


if __name__ == "__main__":
    main()
