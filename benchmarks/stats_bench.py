"""Latent statistics suite: jitted JAX (ae_jax.numerics.stats) against plain numpy, and scikit-learn for the PCA.

Steps: component histograms, FWHM, radii + radius histograms (0.5 and 0.05), covariance, correlation,
PCA, on synthetic z-points (default 200,000 x 256, per-component Gaussians with assorted mu and sigma).
JAX times are the best of --repeats runs after a warm-up (compilation excluded), each ended by
block_until_ready; numpy times are the best of --numpy-repeats runs (default: --repeats). Also checks that both
agree. scikit-learn (and threadpoolctl, which comes with it) is optional: without it the PCA().fit line is
skipped. On a CPU, run it on otherwise idle cores: other processes make both columns noisy. --json adds
every number as one JSON line, last (benchmarks/device_check.py reads it).

    python benchmarks/stats_bench.py [--n 200000] [--d 256] [--repeats 5] [--numpy-repeats 1] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import time

import jax
import numpy as np

from ae_jax.numerics import stats

BIN_WIDTH, LO, HI = 0.25, -12.0, 12.0
RADIUS_BIN_WIDTHS = (0.5, 0.05)


def ONE_BLAS_THREAD():  # noqa: N802 (a context manager, named like a constant)
    """The PCA step is a D x D eigh in LAPACK (OpenBLAS) on both sides. On busy cores OpenBLAS's spinning
    threads can stretch a 5 ms eigh to a second, so both sides run it on one BLAS thread (threadpoolctl comes
    with scikit-learn; without it, as configured)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


STEPS = ("component histograms", "FWHM", "radii + histograms", "covariance", "correlation", "PCA")


def synthetic_z(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 0.5, d)
    sigma = rng.uniform(0.3, 2.0, d)
    return (rng.standard_normal((n, d), dtype=np.float32) * sigma + mu).astype(np.float32)


def numpy_fwhm(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Same definition as stats.fwhm (an empty bin added on either side), column by column."""
    centres = (edges[:-1] + edges[1:]) / 2
    x = np.concatenate([[2 * centres[0] - centres[1]], centres, [2 * centres[-1] - centres[-2]]])
    widths = []
    for h in counts.T.astype(np.float64):
        h = np.pad(h, 1)
        half = h.max() / 2
        i, j = np.flatnonzero(h >= half)[[0, -1]]
        left = x[i - 1] + (half - h[i - 1]) / (h[i] - h[i - 1]) * (x[i] - x[i - 1])
        right = x[j] + (h[j] - half) / (h[j] - h[j + 1]) * (x[j + 1] - x[j])
        widths.append(right - left)
    return np.asarray(widths)


def numpy_radius_histograms(r: np.ndarray) -> list:
    out = []
    for w in RADIUS_BIN_WIDTHS:
        n_bins = int(np.floor(r.max() / w)) + 1
        out.append(np.histogram(r, np.linspace(0.0, n_bins * w, n_bins + 1)))
    return out


def numpy_steps(z: np.ndarray) -> dict:
    """Each step stores its result in `out` and returns it."""
    edges = stats.histogram_edges(BIN_WIDTH, LO, HI)

    def histograms(out):
        out["counts"] = np.stack([np.histogram(z[:, j], edges)[0] for j in range(z.shape[1])], axis=1)

    def fwhms(out):
        out["fwhm"] = numpy_fwhm(out["counts"], edges)

    def radius(out):
        out["radius"] = numpy_radius_histograms(np.linalg.norm(z, axis=1))

    def covariance(out):
        out["cov"] = np.cov(z, rowvar=False)

    def correlation(out):
        std = np.sqrt(np.diag(out["cov"]))
        out["corr"] = out["cov"] / np.outer(std, std)

    def pca(out):  # like the JAX step, from the covariance already computed
        with ONE_BLAS_THREAD():
            variance, vectors = np.linalg.eigh(out["cov"])
        out["pca"] = variance[::-1], vectors[:, ::-1].T, variance[::-1] / variance.sum()

    return dict(zip(STEPS, (histograms, fwhms, radius, covariance, correlation, pca)))


def jax_steps(z: jax.Array) -> dict:
    """Each step stores its result in `out` and returns what to wait for."""
    edges = stats.histogram_edges(BIN_WIDTH, LO, HI)

    def histograms(out):
        out["counts"] = stats.component_histograms(z, BIN_WIDTH, LO, HI)
        return out["counts"]

    def fwhms(out):
        out["fwhm"] = stats.fwhm(out["counts"], edges)
        return out["fwhm"]

    def radius(out):
        r = stats.radii(z)
        out["radius"] = [stats.radius_histogram(r, w) for w in RADIUS_BIN_WIDTHS]
        return out["radius"]

    def covariance(out):
        out["mean"], out["cov"] = stats.covariance(z)
        return out["cov"]

    def correlation(out):
        out["corr"] = stats.correlation(out["cov"])
        return out["corr"]

    def pca(out):
        with ONE_BLAS_THREAD():  # eigh runs on LAPACK; wait for it inside
            out["pca"] = jax.block_until_ready(stats.pca_from_covariance(out["mean"], out["cov"]))
        return out["pca"]

    return dict(zip(STEPS, (histograms, fwhms, radius, covariance, correlation, pca)))


def sklearn_pca_seconds(z: np.ndarray, repeats: int) -> float:
    """Best-of-`repeats` seconds of scikit-learn's full PCA fit (what a numpy user would call for the PCA step)."""
    from sklearn.decomposition import PCA

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        PCA().fit(z)
        best = min(best, time.perf_counter() - start)
    return best


def time_steps(steps: dict, repeats: int, out: dict) -> dict:
    """Best-of-`repeats` seconds per step; steps run in order each repeat (later steps use earlier results)."""
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(out))
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--numpy-repeats", type=int, default=0, help="numpy's repeats (0: --repeats)")
    parser.add_argument("--json", action="store_true", help="also print every number as one JSON line, last")
    args = parser.parse_args(argv)

    z_np = synthetic_z(args.n, args.d)
    z = jax.device_put(z_np)
    j_steps, n_steps, j_out, n_out = jax_steps(z), numpy_steps(z_np), {}, {}
    time_steps(j_steps, 1, j_out)  # warm-up: compilation
    j_time = time_steps(j_steps, args.repeats, j_out)
    n_time = time_steps(n_steps, args.numpy_repeats or args.repeats, n_out)

    print(
        f"latent statistics suite on {args.n:,} x {args.d} float32 z-points; JAX on {jax.devices()[0].device_kind}"
        f" ({jax.device_count()} device(s)); best of {args.repeats} runs after warm-up"
    )
    print(f"{'step':<22}{'jax s':>10}{'numpy s':>10}{'speed-up':>10}")
    for name in STEPS:
        print(f"{name:<22}{j_time[name]:>10.3f}{n_time[name]:>10.3f}{n_time[name] / j_time[name]:>9.1f}x")
    j_total, n_total = sum(j_time.values()), sum(n_time.values())
    print(f"{'total':<22}{j_total:>10.3f}{n_total:>10.3f}{n_total / j_total:>9.1f}x")

    sk_time = None
    if importlib.util.find_spec("sklearn") is None:
        print("scikit-learn PCA().fit: skipped, scikit-learn is not installed")
    else:
        sk_time = sklearn_pca_seconds(z_np, args.repeats)
        ours = j_time["covariance"] + j_time["PCA"]
        print(
            f"scikit-learn PCA().fit on the same z-points: {sk_time:.3f} s (ae_jax covariance + PCA: "
            f"{ours:.3f} s, {sk_time / ours:.1f}x)"
        )

    ev = np.asarray(j_out["pca"].explained_variance)
    agree = {
        "histogram counts equal": bool(np.array_equal(np.asarray(j_out["counts"]), n_out["counts"])),
        "radius histograms equal np.histogram": all(  # of the same radii: the float32 norms differ in the last bit
            np.array_equal(np.asarray(jc), nc) and np.array_equal(je, ne)
            for (jc, je), (nc, ne) in zip(j_out["radius"], numpy_radius_histograms(np.asarray(stats.radii(z))))
        ),
        "FWHM max abs diff": float(np.abs(np.asarray(j_out["fwhm"]) - n_out["fwhm"]).max()),
        "covariance max rel diff": float(
            np.abs(np.asarray(j_out["cov"]) - n_out["cov"]).max() / np.abs(n_out["cov"]).max()
        ),
        "correlation max abs diff": float(np.abs(np.asarray(j_out["corr"]) - n_out["corr"]).max()),
        "explained variance max rel diff": float(np.abs(ev - n_out["pca"][0]).max() / ev.max()),
    }
    print("agreement: " + "; ".join(f"{k}: {v:.2g}" if isinstance(v, float) else f"{k}: {v}" for k, v in agree.items()))
    if args.json:
        device = jax.devices()[0].device_kind
        print(json.dumps({"n": args.n, "d": args.d, "device": device, "jax": j_time, "numpy": n_time, **agree}))


if __name__ == "__main__":
    main()
