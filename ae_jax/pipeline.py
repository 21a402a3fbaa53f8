"""The study of one model, end to end: train (or resume, or reuse), encode, analyze, sample, judge.

Shared by `ae-jax demo` and the scripts in experiments/. Every stage writes files under its own folder,
and a finished stage is reused rather than recomputed, so an interrupted study is resumed by running it again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

from ae_jax import report
from ae_jax.config import Config


def ensure_trained(config: Config, log=print) -> dict:
    """Last epoch's metrics of the run, training or resuming it only if it is not finished."""
    from ae_jax.train import train

    metrics_path = os.path.join(config.run_dir, "metrics.jsonl")
    if os.path.isfile(metrics_path):
        lines = [json.loads(x) for x in open(metrics_path) if x.strip()]
        if lines and lines[-1].get("epoch") == config.train.epochs:
            log(f"{config.run_dir}: already trained for {config.train.epochs} epochs; reusing it")
            return lines[-1]
    ckpt = os.path.join(config.run_dir, "ckpt")
    return train(config, resume=os.path.isdir(ckpt) and any(s.isdigit() for s in os.listdir(ckpt)), log=log)


def ensure_encoded(config: Config, split: str = "train", log=print) -> np.ndarray:
    """The run's z-points of a split (memory-mapped), encoding them if missing or older than the checkpoint."""
    from ae_jax.encode import encode_run, z_path

    path = z_path(config.run_dir, split)
    ckpt = os.path.join(config.run_dir, "ckpt")
    if not os.path.isfile(path) or os.path.getmtime(path) < os.path.getmtime(ckpt):
        encode_run(config.run_dir, split, log=log)
    return np.load(path, mmap_mode="r")


def ensure_judge(config: Config, judge_dir: str, epochs: int, log=print) -> str:
    from ae_jax.judge import train_judge

    if not os.path.isfile(os.path.join(judge_dir, "judge.json")):
        train_judge(config, judge_dir, epochs=epochs, log=log)
    return judge_dir


@dataclasses.dataclass(frozen=True)
class StudySize:
    """How much measuring a study does per model (the smoke size keeps every number small)."""

    tsne: bool = True
    tsne_points: int = 20_000
    tsne_pca: tuple = (None, 2, 4, 10)  # t-SNE inputs: raw z (None) and the first k principal components
    tsne_kw: tuple = ()  # other openTSNE settings as (key, value) pairs, e.g. (("n_iter", 100),)
    sample_n: int = 20_000
    judge_epochs: int = 5


def ensure_analyzed(config: Config, z_path: str, out_dir: str, size: StudySize, log=print) -> dict:
    """summary.json of the z-points' analysis, reused when it is newer than the z-points."""
    from ae_jax.analyze import analyze

    path = os.path.join(out_dir, "summary.json")
    if os.path.isfile(path) and os.path.getmtime(path) > os.path.getmtime(z_path):
        log(f"{out_dir}: analysis is up to date; reusing it")
        with open(path) as f:
            return json.load(f)
    return analyze(
        np.load(z_path, mmap_mode="r"),
        out_dir,
        tsne=size.tsne,
        tsne_points=size.tsne_points,
        tsne_pca=size.tsne_pca,
        tsne_kw=dict(size.tsne_kw),
        seed=config.seed,
    )


def study_model(
    config: Config,
    out_dir: str,
    size: StudySize,
    specs: Sequence[tuple[str, dict]] | None = None,
    judge_dir: str | None = None,
    analysis_dir: str | None = None,
    log=print,
) -> dict:
    """Train, encode the training split, analyze its z-points (into analysis_dir, default out_dir/analysis,
    where another study may already have done it) and run the sampler sweep, into out_dir."""
    from ae_jax.encode import z_path
    from ae_jax.sample import run_sampling

    train_metrics = ensure_trained(config, log)
    z = ensure_encoded(config, "train", log)
    analysis_dir = analysis_dir or os.path.join(out_dir, "analysis")
    summary = ensure_analyzed(config, z_path(config.run_dir), analysis_dir, size, log)
    sampling = run_sampling(
        z,
        os.path.join(out_dir, "sampling"),
        run_dir=config.run_dir,
        sweep=True,
        specs=specs,
        n=size.sample_n,
        seed=config.seed,
        judge_dir=judge_dir,
        log=log,
    )
    return {
        "name": config.name,
        "run_dir": config.run_dir,
        "out_dir": out_dir,
        "analysis_dir": analysis_dir,
        "train": train_metrics,
        "analysis": summary,
        "sampling": sampling,
    }


def headline(result: dict) -> dict:
    """The few numbers of a model's study that go side by side in tables."""
    a, t = result["analysis"], result["train"]
    row = {
        "model": result["name"],
        "held-out mse": t["eval_mse"],
        "psnr dB": t["eval_psnr"],
        "kl_share": t.get("kl_share", 0.0),
        "dominant components": len(a["dominant_components"]),
        "radius peak": a["radius"]["peak"],
        "radius mean": a["radius"]["mean"],
    }
    row.update({k: v for k, v in a["counts"].items() if isinstance(v, (int, float))})
    return row


def sweep_rows(result: dict, k: float) -> list[dict]:
    """Per generator at one k: MC hit fraction, analytic log10 probability, radii, precision and judge scores."""
    rows = []
    for r in result["sampling"]["results"]:
        hit = next(h for h in r["hits"] if h["k"] == k)
        rows.append(
            {
                "model": result["name"],
                "generator": r["label"],
                "k": k,
                "MC hit fraction": hit["mc_fraction"],
                "log10 P analytic": "n/a" if hit["log10_analytic"] is None else hit["log10_analytic"],
                "radius mean": r["radius"]["mean"],
                "radius analytic": r["radius"]["analytic_mean"],
                "k-NN precision": r["manifold_precision_k3"],
                **{
                    name: r[key]
                    for name, key in (("judge FD", "judge_frechet"), ("judge precision", "judge_precision"))
                    if key in r
                },
            }
        )
    return rows


def model_sections(result: dict, ks: Sequence[float] = (2.0, 3.0)) -> list[tuple[str, list[str]]]:
    """Report sections for one model: training, distribution of its z-points, generators."""
    a, s, name = result["analysis"], result["sampling"], result["name"]
    pictures = [report.figure(os.path.join(result["analysis_dir"], f), f) for f in a["figures"]]
    sampling_figures = [report.figure(p, os.path.basename(p)) for p in s["figures"].values()]
    return [
        (
            f"{name}: training",
            [
                report.table(
                    [result["train"]], [c for c in result["train"] if c != "status" and c != "reconstruction_grid"]
                ),
                report.figure(result["train"]["reconstruction_grid"], "held-out reconstructions"),
            ],
        ),
        (f"{name}: z-point distribution", [report.table([headline(result)])] + pictures),
        (f"{name}: generators", [report.table(sum((sweep_rows(result, k) for k in ks), []))] + sampling_figures),
    ]
