"""Held-out quality of judge variants against the trivial baseline: prints one row per variant.

    python benchmarks/judge_bench.py --config faces
    python benchmarks/judge_bench.py --config case1 --set data.dir=../shared/data/celeba --variants flattened

Each variant is a list of `judge.*` overrides on top of --config and --set; the score is the judge's held-out
R^2 (factors) or mean attribute accuracy, beside the baseline's (training mean / majority value).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from ae_jax import config as config_lib
from ae_jax.judge import train_judge

VARIANTS = {
    "mean-pooled": ["judge.pool=mean", "judge.epochs=20"],  # the judge before flattened maps
    "flattened": ["judge.epochs=20"],
    "flattened-2-convs": ["judge.epochs=20", "judge.convs_per_stage=2"],
    "flattened-2-convs-40-epochs": ["judge.epochs=40", "judge.convs_per_stage=2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="faces")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    print(f"{'variant':<42}{'score':>8}{'baseline':>10}{'seconds':>9}")
    for name in args.variants.split(","):
        config = config_lib.load(args.config, args.set + VARIANTS[name])
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            info = train_judge(config, os.path.join(folder, "judge"), log=lambda s: None)
        metric = next(k[len("valid_") :] for k in info if k.startswith("valid_"))
        print(
            f"{name:<42}{info['valid_' + metric]:>8.3f}{info['baseline_' + metric]:>10.3f}"
            f"{time.perf_counter() - start:>9.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
