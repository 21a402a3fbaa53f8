"""The study of one model, end to end: train (or resume, or reuse), then the evaluators, then report sections.

Every stage is keyed by its inputs: a run trains under `<name>-<first 8 hex of its training key>`, so a
changed model, data, train or seed setting trains a new run instead of reusing another config's; the judge
is keyed the same way; evaluators reuse a result only when its inputs match (ae_jax.evaluators.registry). An
interrupted study is resumed by running it again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Sequence

from ae_jax import config as config_lib
from ae_jax import sharding, stages
from ae_jax.config import Config
from ae_jax.evaluators import registry
from ae_jax.train import runs

logger = logging.getLogger(__name__)

JUDGE_FORMAT = 2  # 2: judge.json records the trivial baseline


def ensure_trained(config: Config) -> tuple[Config, str, dict]:
    """(keyed config, training key, last epoch's metrics) of the config's run, training or resuming it unless
    it already holds train.epochs epochs; a new run starts from its shorter twin's epochs where one is finished."""
    from ae_jax.train.loop import train

    run_config, key, done = runs.locate(config)
    if done is not None:
        logger.info(f"{run_config.run_dir}: reused (trained for {config.train.epochs} epochs, training key {key[:12]})")
        return run_config, key, done
    runs.start_from_shorter_twin(run_config)
    resume = runs.has_checkpoints(run_config.run_dir)
    logger.info(f"{run_config.run_dir}: {'resuming' if resume else 'training'} (training key {key[:12]})")
    metrics = train(run_config, resume=resume)
    if "signal" in metrics:
        raise runs.Interrupted(
            f"{run_config.run_dir}: {metrics['status']}; run the same command again to resume", metrics["signal"]
        )
    return run_config, key, metrics


def train_arms_together(configs: Sequence[Config]) -> None:
    """Train the configs' runs that are not yet trained, each group that can share a program
    (ae_jax.train.arms.program_groups) as arms of one program; a run left alone in its group, or every run where
    the arms program resolves to separate (CPUs), is left to ensure_trained."""
    import jax

    from ae_jax.train import arms
    from ae_jax.train.loop import train_together

    pending = {}
    for config in configs:
        run_config, key, done = runs.locate(config)
        if done is None:
            pending.setdefault(run_config.run_dir, run_config)
    for group in arms.program_groups(list(pending.values())):
        if len(group) > 1 and arms.program(group[0], jax.default_backend()) != "separate":
            logger.info(f"training {len(group)} arms as one program: {', '.join(r.name for r in group)}")
            results = train_together(group, resume=any(runs.has_checkpoints(r.run_dir) for r in group))
            stopped = [r for r in results if "signal" in r]
            if stopped:  # the study stops with them, not at the next group
                names = ", ".join(r.name for r in group)
                message = f"{names}: {stopped[0]['status']}; run the same command again to resume"
                raise runs.Interrupted(message, stopped[0]["signal"])


def ensure_judge(config: Config, root: str) -> str:
    """The folder of the judge trained on config's data under config.judge, in root/judge-<key8>."""
    from ae_jax.train.judge import train_judge

    inputs = {
        "format": JUDGE_FORMAT,
        "data": runs.training_inputs_of(config, "data", "seed"),
        "judge": config_lib.to_dict(config)["judge"],
    }
    judge_dir = os.path.join(root, f"judge-{stages.digest(inputs)[:8]}")
    record_path = os.path.join(judge_dir, "stage.json")
    if not stages.reusable(f"judge {judge_dir}", record_path, inputs):
        if sharding.is_main():
            shutil.rmtree(judge_dir, ignore_errors=True)
        sharding.barrier("judge folder cleared")
        train_judge(config, judge_dir)  # every process trains the same judge; process 0 writes it
        stages.record(record_path, inputs)
        sharding.barrier("judge written")
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
    config: Config, out_dir: str, names: Sequence[str] | None = None, judge_dir: str | None = None
) -> ModelResult:
    """Train the config's run, then run the evaluators `names` (default config.eval.names): per-run ones write
    under the run folder (shared by every study of the run), the others under out_dir."""
    registry.check(config, names or config.eval.names, True, bool(judge_dir))
    run_config, key, train_metrics = ensure_trained(config)
    ctx = registry.RunContext(
        run_config,
        out_dir,
        run_dir=run_config.run_dir,
        judge_dir=judge_dir,
        shared_dir=os.path.join(run_config.run_dir, "eval"),
    )
    return ModelResult(config.name, run_config, key, train_metrics, registry.run(ctx, names))
