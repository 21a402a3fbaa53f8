"""Judge scores against the sample size n: real vs real (and a run's generators) with 95% bootstrap intervals.

    python benchmarks/judge_sample_size.py RUN_FOLDER JUDGE_FOLDER --n 256,2048 [--generators]

RUN_FOLDER is a trained faces run (e.g. a demo's `runs/faces-<key8>`), JUDGE_FOLDER its study's judge
(`judge-<key8>`). Held-out faces are rendered at 20x the largest n (their split is 10% of data.num_images), so
every n gets 2n held-out images; --generators adds a uniform box and the fitted Gaussians of the run's z-points.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from ae_jax import config as config_lib
from ae_jax.config.schema import GeneratorSpec
from ae_jax.data import datasets
from ae_jax.evaluators import generators, judge, registry
from ae_jax.train.judge import load_judge

SPECS = (
    GeneratorSpec.of("uniform", bound=5),
    GeneratorSpec("diagonal"),
    GeneratorSpec("full"),
    GeneratorSpec.of("mixture", n_components=10),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("judge")
    parser.add_argument("--n", default="256,2048", help="comma-separated sample sizes")
    parser.add_argument("--generators", action="store_true")
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    ns = [int(v) for v in args.n.split(",")]
    config = config_lib.load(f"{args.run}/config.json")
    held_out = dataclasses.replace(config.data, num_images=20 * max(ns))
    real = datasets.load_split(held_out, "valid", config.seed).images
    gens = dataclasses.replace(config.generators, specs=SPECS, n=max(ns))
    ctx = registry.RunContext(dataclasses.replace(config, generators=gens), "unused", args.run, judge_dir=args.judge)
    draws = generators.draws(ctx) if args.generators else []
    features = load_judge(args.judge)
    for n in ns:
        start = time.perf_counter()
        rows = judge.judge_scores(
            draws, n, ctx.decode, features, real, ctx.reconstruct, config.judge.precision_k, args.resamples, config.seed
        )
        print(f"n = {n} ({time.perf_counter() - start:.0f} s)")
        for r in rows:
            fd, p, rc = (
                f"{r[m]:.4f} [{r[m + '_low']:.4f}, {r[m + '_high']:.4f}]"
                for m in ("judge_frechet", "judge_precision", "judge_recall")
            )
            print(f"  {r['label'][:40]:<42} FD {fd}  precision {p}  recall {rc}", flush=True)


if __name__ == "__main__":
    main()
