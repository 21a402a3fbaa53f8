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
from ae_jax.train.judge import train_judge

# Every variant pins what it varies (batch size, augmentation) so that its row keeps its meaning when defaults move.
B64 = "judge.batch_size=64"  # the default before batch 16
VARIANTS = {
    "defaults": [],  # the current JudgeConfig (CelebA: add --set judge.epochs=N as the studies do)
    # faces (embedded factors, R^2): pooling, depth, then more and smaller steps
    "mean-pooled": ["judge.pool=mean", "judge.epochs=20", B64],  # the judge before flattened maps
    "flattened": ["judge.epochs=20", B64],
    "flattened-2-convs": ["judge.epochs=20", "judge.convs_per_stage=2", B64],
    "flattened-2-convs-40-epochs": ["judge.epochs=40", "judge.convs_per_stage=2", B64],
    "2-convs-20-epochs-wd": ["judge.epochs=20", "judge.convs_per_stage=2", "judge.weight_decay=0.05", B64],
    "20-epochs-lr-3e-3": ["judge.epochs=20", "judge.learning_rate=3e-3", B64],
    "20-epochs-batch-32": ["judge.epochs=20", "judge.batch_size=32"],
    "2-convs-10-epochs-batch-32": ["judge.epochs=10", "judge.convs_per_stage=2", "judge.batch_size=32"],
    "2-convs-20-epochs-batch-32": ["judge.epochs=20", "judge.convs_per_stage=2", "judge.batch_size=32"],
    "6-epochs-batch-16": ["judge.epochs=6", "judge.batch_size=16"],
    "10-epochs-batch-16": ["judge.epochs=10", "judge.batch_size=16"],
    "12-epochs-batch-16": ["judge.epochs=12", "judge.batch_size=16"],
    "15-epochs-batch-16": ["judge.epochs=15", "judge.batch_size=16"],
    "20-epochs-batch-16": ["judge.epochs=20", "judge.batch_size=16"],
    "2-convs-6-epochs-batch-16": ["judge.epochs=6", "judge.convs_per_stage=2", "judge.batch_size=16"],
    "2-convs-10-epochs-batch-16": ["judge.epochs=10", "judge.convs_per_stage=2", "judge.batch_size=16"],
    "2-convs-20-epochs-batch-16": ["judge.epochs=20", "judge.convs_per_stage=2", "judge.batch_size=16"],
    "8-epochs-batch-8": ["judge.epochs=8", "judge.batch_size=8"],
    "10-epochs-batch-8": ["judge.epochs=10", "judge.batch_size=8"],
    # CelebA (40 attributes, mean accuracy; the studies train the judge 5 epochs): mirror augmentation, batch size
    "10-epochs-no-flip": ["judge.epochs=10", "judge.augment=none", B64],
    "10-epochs-flip": ["judge.epochs=10", "judge.augment=flip", B64],
    "5-epochs-no-flip": ["judge.epochs=5", "judge.augment=none", B64],
    "5-epochs-flip": ["judge.epochs=5", "judge.augment=flip", B64],
    "5-epochs-flip-batch-16": ["judge.epochs=5", "judge.augment=flip", "judge.batch_size=16"],
    "3-epochs-flip-batch-16": ["judge.epochs=3", "judge.augment=flip", "judge.batch_size=16"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="faces")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--curve", action="store_true", help="also print the held-out score after every epoch")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    print(f"{'variant':<42}{'score':>8}{'baseline':>10}{'seconds':>9}")
    for name in args.variants.split(","):
        config = config_lib.load(args.config, args.set + VARIANTS[name])
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            info = train_judge(config, os.path.join(folder, "judge"), curve=args.curve)
        seconds = time.perf_counter() - start
        metric = next(k[len("valid_") :] for k in info if k.startswith("valid_") and "curve" not in k)
        curve = "  " + " ".join(f"{v:.3f}" for v in info[f"valid_curve_{metric}"]) if args.curve else ""
        score, baseline = info["valid_" + metric], info["baseline_" + metric]
        print(f"{name:<42}{score:>8.3f}{baseline:>10.3f}{seconds:>9.0f}{curve}", flush=True)


if __name__ == "__main__":
    main()
