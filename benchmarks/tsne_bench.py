"""t-SNE wall time against the number of z-points: ae_jax.numerics.stats.tsne (openTSNE) and scikit-learn's TSNE.

Points are a random subset of a z-point file (--z, e.g. a run's z_train.npy) or synthetic Gaussian z-points
(--d components). Each size runs once on raw z and once after PCA to --pca components; scikit-learn
(Barnes-Hut, the same perplexity and iteration counts) runs up to --sklearn-max points for reference.

    python benchmarks/tsne_bench.py [--sizes 1000,2500,5000,10000,20000] [--z results/.../z_train.npy]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ae_jax.numerics import stats

N_ITER, EXAGGERATION_ITER = 500, 250  # openTSNE's defaults, passed to both libraries


def points(path: str | None, n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if path:
        z = np.load(path, mmap_mode="r")
        if len(z) < n:
            raise SystemExit(f"{path} holds {len(z)} points, fewer than the {n} asked for")
        return np.asarray(z[np.sort(rng.choice(len(z), n, replace=False))], np.float32)
    return (rng.standard_normal((n, d)) * rng.uniform(0.3, 2.0, d) + rng.normal(0, 0.5, d)).astype(np.float32)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sklearn_tsne(z: np.ndarray, n_jobs: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(
        perplexity=30.0,
        early_exaggeration=12.0,
        max_iter=N_ITER + EXAGGERATION_ITER,
        init="pca",
        random_state=0,
        n_jobs=n_jobs,
    ).fit_transform(z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2500,5000,10000,20000")
    parser.add_argument("--z", default=None, help="a .npy of z-points (default: synthetic)")
    parser.add_argument("--d", type=int, default=256, help="components of synthetic z-points")
    parser.add_argument("--pca", type=int, default=10, help="PCA components of the reduced variant")
    parser.add_argument("--sklearn-max", type=int, default=5000, help="largest size also run in scikit-learn")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"t-SNE (perplexity 30, {EXAGGERATION_ITER} + {N_ITER} iterations, {args.jobs} threads) on "
        f"{args.z or f'synthetic {args.d}-d Gaussian z-points'}"
    )
    print(f"{'points':>8}{'method':>8}{'raw s':>9}{f'pca{args.pca} s':>9}{'sklearn s':>11}")
    for n in sizes:
        z = points(args.z, n, args.d)
        kw = dict(n_jobs=args.jobs, n_iter=N_ITER, early_exaggeration_iter=EXAGGERATION_ITER)
        raw = seconds(lambda z=z, kw=kw: stats.tsne(z, **kw))
        reduced = seconds(lambda z=z, kw=kw: stats.tsne(z, n_pca=args.pca, **kw))
        sk = f"{seconds(lambda z=z: sklearn_tsne(z, args.jobs)):>11.1f}" if n <= args.sklearn_max else f"{'-':>11}"
        print(f"{n:>8}{stats.tsne_gradient_method(n):>8}{raw:>9.1f}{reduced:>9.1f}{sk}", flush=True)


if __name__ == "__main__":
    main()
