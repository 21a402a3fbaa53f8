"""The study of one model, end to end: train (or resume, or reuse), then the evaluators, then report sections.

Every stage is keyed by its inputs: a run trains under `<name>-<first 8 hex of its training key>`, so a
changed model, data, train or seed setting trains a new run instead of reusing another config's; the judge
is keyed the same way; evaluators reuse a result only when its inputs match (ae_jax.evaluators.registry). An
interrupted study is resumed by running it again.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence

from ae_jax import config as config_lib
from ae_jax import stages
from ae_jax.config import Config
from ae_jax.evaluators import registry

JUDGE_FORMAT = 2  # 2: judge.json records the trivial baseline


def keyed_run(config: Config) -> tuple[Config, str]:
    """The config renamed to `<name>-<key8>` (its run folder), and its training key."""
    from ae_jax.train.loop import training_key

    key = training_key(config)
    return dataclasses.replace(config, name=f"{config.name}-{key[:8]}"), key


def _locate(config: Config, log) -> tuple[Config, str, dict | None]:
    """(keyed config, training key, last epoch's metrics if it holds train.epochs epochs, else None)."""
    from ae_jax.train.loop import TrainingError, training_inputs

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
    from ae_jax.train.loop import TrainingError, train

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
    """Train the configs' runs that are not yet trained as arms of one program (ae_jax.train.arms) when they can
    share one; otherwise leave them to ensure_trained, one by one."""
    from ae_jax.train import arms
    from ae_jax.train.loop import train_together

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
    from ae_jax.train.loop import training_key

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
    from ae_jax.train.judge import train_judge
    from ae_jax.train.loop import training_inputs

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
    results: dict[str, registry.Result]

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "run_dir": self.config.run_dir,
            "config_hash": self.key,
            "config": config_lib.to_dict(self.config),
            "train": self.train,
            "evaluators": {name: r.to_json() for name, r in self.results.items()},
        }


def study_model(
    config: Config, out_dir: str, names: Sequence[str] | None = None, judge_dir: str | None = None, log=print
) -> ModelResult:
    """Train the config's run, then run the evaluators `names` (default config.eval.names): per-run ones write
    under the run folder (shared by every study of the run), the others under out_dir."""
    registry.check(config, names or config.eval.names, True, bool(judge_dir))
    run_config, key, train_metrics = ensure_trained(config, log)
    ctx = registry.RunContext(
        run_config,
        out_dir,
        run_dir=run_config.run_dir,
        judge_dir=judge_dir,
        shared_dir=os.path.join(run_config.run_dir, "eval"),
        log=log,
    )
    return ModelResult(config.name, run_config, key, train_metrics, registry.run(ctx, names))
