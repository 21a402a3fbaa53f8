"""The study of one model, end to end: train (or resume, or reuse), then the evaluators, then report sections.

Every stage is keyed by its inputs: a run trains under `<name>-<first 8 hex of its training key>`, so a
changed model, data, train or seed setting trains a new run instead of reusing another config's; the judge
is keyed the same way; evaluators reuse a result only when its inputs match (ae_jax.evaluators). An
interrupted study is resumed by running it again.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence

from ae_jax import config as config_lib
from ae_jax import evaluators, report, stages
from ae_jax.config import Config

JUDGE_FORMAT = 2  # 2: judge.json records the trivial baseline
REFERENCE_ROWS = ("reconstructions", "real vs real")  # judge rows that are not generators


def keyed_run(config: Config) -> tuple[Config, str]:
    """The config renamed to `<name>-<key8>` (its run folder), and its training key."""
    from ae_jax.train import training_key

    key = training_key(config)
    return dataclasses.replace(config, name=f"{config.name}-{key[:8]}"), key


def _locate(config: Config, log) -> tuple[Config, str, dict | None]:
    """(keyed config, training key, last epoch's metrics if it holds train.epochs epochs, else None)."""
    from ae_jax.train import TrainingError, training_inputs

    run_config, key = keyed_run(config)
    if not os.path.isdir(run_config.run_dir):
        run_config = _same_run_under_another_name(run_config, key, log)
    saved = stages.read_json(os.path.join(run_config.run_dir, "config.json"))
    if saved is not None and keyed_run(config_lib.from_dict(saved))[1] != key:
        changes = stages.changed_keys(training_inputs(config_lib.from_dict(saved)), training_inputs(config))
        raise TrainingError(f"{run_config.run_dir} was trained with another config: {'; '.join(changes)}")
    lines = stages.read_jsonl(os.path.join(run_config.run_dir, "metrics.jsonl")) or []
    return run_config, key, lines[-1] if lines and lines[-1].get("epoch") == config.train.epochs else None


def _has_checkpoints(run_config: Config) -> bool:
    ckpt = os.path.join(run_config.run_dir, "ckpt")
    return os.path.isdir(ckpt) and any(s.isdigit() for s in os.listdir(ckpt))


def ensure_trained(config: Config, log=print) -> tuple[Config, str, dict]:
    """(keyed config, training key, last epoch's metrics) of the config's run, training or resuming it unless
    it already holds train.epochs epochs."""
    from ae_jax.train import TrainingError, train

    run_config, key, done = _locate(config, log)
    if done is not None:
        log(f"{run_config.run_dir}: reused (trained for {config.train.epochs} epochs, training key {key[:12]})")
        return run_config, key, done
    resume = _has_checkpoints(run_config)
    log(f"{run_config.run_dir}: {'resuming' if resume else 'training'} (training key {key[:12]})")
    metrics = train(run_config, resume=resume, log=log)
    if metrics["status"] != "complete":
        raise TrainingError(f"{run_config.run_dir}: {metrics['status']}; run the same command again to resume")
    return run_config, key, metrics


def train_arms_together(configs: Sequence[Config], log=print) -> None:
    """Train the configs' runs that are not yet trained as arms of one program (ae_jax.arms) when they can
    share one; otherwise leave them to ensure_trained, one by one."""
    from ae_jax import arms
    from ae_jax.train import train_together

    pending = {}
    for config in configs:
        run_config, key, done = _locate(config, log)
        if done is None:
            pending.setdefault(run_config.run_dir, run_config)
    runs = list(pending.values())
    try:
        arms.check_same_program(runs)
    except config_lib.ConfigError as e:
        log(f"training one by one: {e}")
        return
    if len(runs) > 1:
        log(f"training {len(runs)} arms as one program: {', '.join(r.name for r in runs)}")
        train_together(runs, resume=any(_has_checkpoints(r) for r in runs), log=log)


def _same_run_under_another_name(run_config: Config, key: str, log) -> Config:
    """A run of workdir with the same training key under another name (an ablation arm equal to the baseline),
    if there is one, else run_config: a config is trained once whatever its name."""
    from ae_jax.train import training_key

    suffix = f"-{key[:8]}"
    names = (
        sorted(n for n in os.listdir(run_config.workdir) if n.endswith(suffix))
        if os.path.isdir(run_config.workdir)
        else []
    )
    for name in names:
        saved = stages.read_json(os.path.join(run_config.workdir, name, "config.json"))
        if saved is not None and training_key(config_lib.from_dict(saved)) == key:
            log(f"{run_config.run_dir}: the same training key as {name}; using that run")
            return dataclasses.replace(run_config, name=name)
    return run_config


def ensure_judge(config: Config, root: str, log=print) -> str:
    """The folder of the judge trained on config's data under config.judge, in root/judge-<key8>."""
    from ae_jax.judge import train_judge
    from ae_jax.train import training_inputs

    inputs = {
        "format": JUDGE_FORMAT,
        "data": {k: v for k, v in training_inputs(config).items() if k.startswith(("data.", "seed"))},
        "judge": config_lib.to_dict(config)["judge"],
    }
    judge_dir = os.path.join(root, f"judge-{stages.digest(inputs)[:8]}")
    record_path = os.path.join(judge_dir, "stage.json")
    if not stages.reusable(f"judge {judge_dir}", record_path, inputs, log):
        shutil.rmtree(judge_dir, ignore_errors=True)
        train_judge(config, judge_dir, log=log)
        stages.record(record_path, inputs)
    return judge_dir


@dataclasses.dataclass(frozen=True)
class ModelResult:
    """One model of a study: its label, keyed run config, training key and metrics, evaluator results."""

    label: str
    config: Config
    key: str
    train: dict
    results: dict[str, evaluators.Result]

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "run_dir": self.config.run_dir,
            "config_hash": self.key,
            "config": config_lib.to_dict(self.config),
            "train": self.train,
            "evaluators": {
                name: {"key": r.key, "folder": r.folder, "numbers": r.numbers, "figures": r.figures}
                for name, r in self.results.items()
            },
        }


def study_model(
    config: Config, out_dir: str, names: Sequence[str] | None = None, judge_dir: str | None = None, log=print
) -> ModelResult:
    """Train the config's run, then run the evaluators `names` (default config.eval.names): per-run ones write
    under the run folder (shared by every study of the run), the others under out_dir."""
    evaluators.check(config, names or config.eval.names, True, bool(judge_dir))
    run_config, key, train_metrics = ensure_trained(config, log)
    ctx = evaluators.RunContext(
        run_config,
        out_dir,
        run_dir=run_config.run_dir,
        judge_dir=judge_dir,
        shared_dir=os.path.join(run_config.run_dir, "eval"),
        log=log,
    )
    return ModelResult(config.name, run_config, key, train_metrics, evaluators.run(ctx, names))


def headline(m: ModelResult) -> dict:
    """The few numbers of a model's study that go side by side in tables."""
    row = {"model": m.label}
    if "reconstruction" in m.results:
        r = m.results["reconstruction"].numbers
        row.update({"held-out mse": r["eval_mse"], "psnr dB": r["eval_psnr"], "kl_share": r["kl_share"]})
    if "distribution" in m.results:
        a = m.results["distribution"].numbers
        row.update(
            {
                "dominant components": len(a["dominant_components"]),
                "radius peak": a["radius"]["peak"],
                "radius mean": a["radius"]["mean"],
            }
        )
        row.update({k: v for k, v in a["counts"].items() if isinstance(v, (int, float))})
    return row


def sweep_rows(m: ModelResult, k: float) -> list[dict]:
    """Per generator at one k: MC hit fraction, analytic log10 probability, radii, precision and judge scores."""
    judged = {r["label"]: r for r in m.results["judge"].numbers["rows"]} if "judge" in m.results else {}
    rows = []
    for r in m.results["generators"].numbers["results"]:
        hit = next(h for h in r["hits"] if h["k"] == k)
        precision = next(v for key, v in r.items() if key.startswith("manifold_precision"))
        scores = judged.get(r["label"], {})
        rows.append(
            {
                "model": m.label,
                "generator": r["label"],
                "k": k,
                "MC hit fraction": hit["mc_fraction"],
                "log10 P analytic": "n/a" if hit["log10_analytic"] is None else hit["log10_analytic"],
                "radius mean": r["radius"]["mean"],
                "radius analytic": r["radius"]["analytic_mean"],
                "k-NN precision": precision,
                **(
                    {"judge FD": scores["judge_frechet"], "judge precision": scores["judge_precision"]}
                    if scores
                    else {}
                ),
            }
        )
    return rows


def model_sections(m: ModelResult, ks: Sequence[float]) -> list[tuple[str, list[str]]]:
    """Report sections for one model: one per evaluator that ran, figures under their numbers."""
    sections = []
    if "reconstruction" in m.results:
        r = m.results["reconstruction"]
        sections.append(
            (
                f"{m.label}: reconstruction",
                [report.table([r.numbers])] + [report.figure(p, name) for name, p in r.figures.items()],
            )
        )
    if "distribution" in m.results:
        r = m.results["distribution"]
        sections.append(
            (
                f"{m.label}: z-point distribution",
                [report.table([headline(m)])] + [report.figure(p, name) for name, p in r.figures.items()],
            )
        )
    if "generators" in m.results:
        r = m.results["generators"]
        rows = [row for k in ks for row in sweep_rows(m, k)]
        sections.append(
            (f"{m.label}: generators", [report.table(rows)] + [report.figure(p, name) for name, p in r.figures.items()])
        )
    if "intrinsic_dimension" in m.results:
        r = m.results["intrinsic_dimension"]
        table = [dict(set=k, **row) for k, rows in r.numbers["rows"].items() for row in rows]
        sections.append(
            (
                f"{m.label}: intrinsic dimension",
                [report.table(table)] + [report.figure(p, name) for name, p in r.figures.items()],
            )
        )
    return sections


def _short(row: dict) -> str:
    """A generator's label, or for fitted ones (whose labels list fitted values) its sampler's name."""
    return row["label"] if row["sampler"] in ("grid", "uniform", "isotropic") else f"fitted {row['sampler']}"


def findings(models: Sequence[ModelResult], k: float) -> tuple[list[str], list[str]]:
    """What the evaluators found, as a few sentences with the headline numbers (3 significant digits), and the
    figures that show it (each model's decoded grid): the first thing a results page says."""
    sentences, figures = [], []
    for m in models:
        r = m.results
        if "reconstruction" in r:
            n = r["reconstruction"].numbers
            sentences.append(
                f"{m.label} reconstructs held-out images with per-pixel MSE {n['eval_mse']:.3g} "
                f"(PSNR {n['eval_psnr']:.3g} dB)."
            )
        if "generators" in r:
            rows = r["generators"].numbers["results"]
            share = {_short(row): next(h["mc_fraction"] for h in row["hits"] if h["k"] == k) for row in rows}
            inside = [f"{label} {v:.3g}" for label, v in share.items() if v >= 0.5]
            outside = [label for label, v in share.items() if v == 0]
            sentences.append(
                f"{m.label}: share of generated points inside the data box (each component within mu +- {k:g} "
                f"half-widths): {', '.join(inside) or 'no generator reaches 0.5'}"
                + (f"; none at all for {', '.join(outside)}." if outside else ".")
            )
            if "decoded_grid" in r["generators"].figures:
                figures.append(r["generators"].figures["decoded_grid"])
        if "judge" in r:
            rows = sorted(r["judge"].numbers["rows"], key=lambda row: row["judge_frechet"])
            by_label = {row["label"]: row["judge_frechet"] for row in rows}
            generated = [row for row in rows if row["label"] not in REFERENCE_ROWS]
            sentences.append(
                f"{m.label}: judge Frechet distance to held-out images {generated[0]['judge_frechet']:.3g} for "
                f"{generated[0]['label']} (the closest generator), {generated[-1]['judge_frechet']:.3g} for "
                f"{generated[-1]['label']}; against {by_label['reconstructions']:.3g} for reconstructions and "
                f"{by_label['real vs real']:.3g} between two halves of the held-out images."
            )
        if "intrinsic_dimension" in r:
            rows = r["intrinsic_dimension"].numbers["rows"]
            z, null = rows["z-points"][0], rows["fitted full Gaussian"][0]
            sentences.append(
                f"{m.label}: TwoNN intrinsic dimension of the z-points {z['dimension']:.3g} at the smallest scale, "
                f"against {null['dimension']:.3g} for a Gaussian with their covariance."
            )
    return sentences, figures
