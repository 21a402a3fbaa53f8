"""Who a run is: its training key, its folder (located, reused or refused) and its saved config.

A run folder holds config.json (every setting), ckpt/ (checkpoints), metrics.jsonl and the grids. Two configs
with the same training key train the same parameters, so a run trains under `<name>-<first 8 hex of its key>`
and a folder holding another config's run is refused naming the settings that differ. The training loop
(ae_jax.train.loop) imports this module, never the reverse.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import shutil
from collections.abc import Sequence

from ae_jax import config as config_lib
from ae_jax import sharding, stages
from ae_jax.config import Config, ConfigError

logger = logging.getLogger(__name__)

TRAINING_FORMAT = 1  # bump when the same config would train different parameters

NOT_TRAINING_KEYS = (
    "name",
    "workdir",
    "data.cache_dir",
    "data.placement",
    "train.checkpoint_every_steps",
    "train.keep_checkpoints",
    "train.prefetch",
    "train.arms_program",
    "train.profile_steps",
    "train.eval_images",
    "train.grid_images",
)

# What `ae-jax train --resume RUN_FOLDER --set ...` may change: how long to train and what is not a training input,
# but where the run is (name, workdir), which the run folder decides.
RESUMABLE_KEYS = ("train.epochs", *(k for k in NOT_TRAINING_KEYS if k not in ("name", "workdir")))

# Settings added after runs were keyed enter the key only when set: a run keyed before they existed behaved as
# their default, so it keeps its key.
ADDED_LATER = {"data.channels": 0, "data.convert_mode": False, "model.init": "flax"}


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a run folder in the way); the message says why and what to do."""


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite: the run failed (not a bad input), so the command exits 1."""


class Interrupted(TrainingError):
    """A signal stopped training after its checkpoint; the command exits 128 + the signal (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, message: str, signal: int):
        super().__init__(message)
        self.signal = signal


def training_inputs(config: Config) -> dict:
    """Every setting the trained parameters depend on, flattened: seed, data, model and train sections, less
    where outputs go and how often checkpoints are kept; data.dir as an absolute path."""
    d = config_lib.to_dict(config)
    flat = stages.flatten({k: d[k] for k in ("seed", "data", "model", "train")})
    flat["data.dir"] = os.path.abspath(flat["data.dir"]) if flat["data.dir"] else ""
    return {
        k: v for k, v in flat.items() if k not in NOT_TRAINING_KEYS and not (k in ADDED_LATER and v == ADDED_LATER[k])
    }


def training_inputs_of(config: Config, *sections: str) -> dict:
    """The training inputs of some sections only (e.g. "data", "seed"): what a stage keyed on the run's data
    (the judge, the encoded z-points, an evaluator) depends on."""
    return {k: v for k, v in training_inputs(config).items() if k.split(".")[0] in sections}


def training_key(config: Config) -> str:
    """The hash of `training_inputs`: two configs with the same key train the same parameters."""
    return stages.digest({"format": TRAINING_FORMAT, **training_inputs(config)})


def keyed_run(config: Config) -> tuple[Config, str]:
    """The config renamed to `<name>-<key8>` (its run folder), and its training key."""
    key = training_key(config)
    return dataclasses.replace(config, name=f"{config.name}-{key[:8]}"), key


def saved_config(run_dir: str) -> Config | None:
    """The config a run folder was trained with (its config.json), or None when it has none (or a damaged one)."""
    saved = stages.read_json(os.path.join(run_dir, "config.json"))
    return None if saved is None else config_lib.from_dict(saved)


def load_run_config(run_dir: str, overrides: list[str] = ()) -> Config:
    """A trained run's config.json with overrides of the settings after training (distribution, generators,
    ...); an override that would describe another trained model (model, train, seed) is refused."""
    config = saved_config(run_dir)
    if config is None:
        raise FileNotFoundError(
            f"{run_dir} is not a run folder: {os.path.join(run_dir, 'config.json')} is missing or unreadable"
        )
    updated = config_lib.override(config, overrides)
    fixed = [k for k in ("seed", "model", "train") if getattr(config, k) != getattr(updated, k)]
    if fixed:
        raise ConfigError(
            f"--set changes {', '.join(fixed)} of the trained run in {run_dir}; those describe how it was trained "
            "(train another run to change them)"
        )
    return updated


def has_checkpoints(run_dir: str) -> bool:
    ckpt = os.path.join(run_dir, "ckpt")
    return os.path.isdir(ckpt) and any(s.isdigit() for s in os.listdir(ckpt))


def resume_config(run_dir: str, overrides: Sequence[str] = ()) -> Config:
    """The config to resume a run folder with: its own config.json, placed where the folder is, with `--set`
    overrides of the settings that may change on resume (RESUMABLE_KEYS) only; any other is refused by name."""
    config = saved_config(run_dir)
    workdir, name = os.path.split(os.path.normpath(run_dir))
    if config is None:
        raise FileNotFoundError(
            f"--resume {run_dir}: not a run folder ({os.path.join(run_dir, 'config.json')} is missing or unreadable); "
            f"{runs_nearby(workdir or '.', name)}"
        )
    refused = [k for k in stages.flatten(config_lib.parse_overrides(overrides)) if k not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(
            f"--set {', '.join(refused)}: may not change when resuming {run_dir} (only {', '.join(RESUMABLE_KEYS)} "
            f"may); to train with other settings, start another run: ae-jax train --config "
            f"{os.path.join(run_dir, 'config.json')} --set name=NEW_NAME --set ..."
        )
    return config_lib.override(config, overrides, {"workdir": workdir or ".", "name": name})


def refuse_resume_without_checkpoints(config: Config) -> None:
    """Refuse --resume of a run folder that holds no checkpoint nor config.json (a misspelt run name would otherwise
    start a new run), naming the runs of its workdir that hold some; one set up but stopped before its first
    checkpoint starts from step 0."""
    if not has_checkpoints(config.run_dir) and not os.path.isfile(os.path.join(config.run_dir, "config.json")):
        raise TrainingError(
            f"--resume: {config.run_dir} holds no checkpoint to resume; {runs_nearby(config.workdir, config.name)}; "
            "leave out --resume to start a new run"
        )


def runs_nearby(workdir: str, name: str) -> str:
    """The runs of workdir that hold checkpoints, as a sentence (the closest to `name` suggested first)."""
    names = os.listdir(workdir) if os.path.isdir(workdir) else []
    found = sorted(n for n in names if has_checkpoints(os.path.join(workdir, n)))
    if not found:
        return f"no run in {workdir} holds checkpoints"
    close = difflib.get_close_matches(name, found, n=1)
    shown = ", ".join(found[:20]) + (f" and {len(found) - 20} more" if len(found) > 20 else "")
    return f"runs with checkpoints in {workdir}: {shown}" + (f" (did you mean {close[0]}?)" if close else "")


def refuse_another_config(config: Config, run_dir: str, may_differ: tuple[str, ...] = (), hint: str = "") -> None:
    """Refuse a run folder whose config.json trains other parameters than `config`, naming the settings (and
    what to do: `hint`)."""
    saved = saved_config(run_dir)
    if saved is None:
        return
    changes = stages.changed_keys(training_inputs(saved), training_inputs(config))
    changes = [c for c in changes if c.split(":")[0] not in may_differ]
    if changes:
        raise TrainingError(f"{run_dir} was trained with another config: {'; '.join(changes)}{hint}")


def prepare_run_dir(config: Config, resume: bool) -> None:
    """Check the run folder before training into it (checkpoints only with --resume, of the same config but for
    train.epochs), then write config.json."""
    if not resume and has_checkpoints(config.run_dir):
        raise TrainingError(
            f"{config.run_dir} already holds checkpoints; continue it with ae-jax train --resume {config.run_dir}, "
            "or choose another run name with --set name=..."
        )
    if resume:
        hint = (
            f". To continue it as it was trained: ae-jax train --resume {config.run_dir} "
            f"[--set train.epochs=N] (its own config.json; --set only {', '.join(RESUMABLE_KEYS)})"
        )
        refuse_another_config(config, config.run_dir, may_differ=("train.epochs",), hint=hint)
    sharding.barrier("run folder checked")  # every process has looked before the main one writes
    if sharding.is_main():
        os.makedirs(config.run_dir, exist_ok=True)
        config_lib.save(config, os.path.join(config.run_dir, "config.json"))


def locate(config: Config) -> tuple[Config, str, dict | None]:
    """(keyed config, training key, last epoch's metrics if it holds train.epochs epochs, else None)."""
    run_config, key = keyed_run(config)
    if not os.path.isdir(run_config.run_dir):
        run_config = _same_run_under_another_name(run_config, key)
    refuse_another_config(config, run_config.run_dir)
    return run_config, key, _finished(run_config.run_dir, config.train.epochs)


def _finished(run_dir: str, epochs: int) -> dict | None:
    """The last epoch's metrics of a run folder that holds `epochs` epochs and their checkpoint, else None."""
    lines = stages.read_jsonl(os.path.join(run_dir, "metrics.jsonl")) or []
    last = lines[-1] if lines else {}
    saved = os.path.isdir(os.path.join(run_dir, "ckpt", str(last.get("step"))))  # written after the line
    return last if last.get("epoch") == epochs and saved else None


# What a shorter twin's folder lends a longer run: the records and figures of the epochs both share.
_TWIN_SKIPS = ("config.json", "ckpt", "eval", "profile", "tensorboard")


def start_from_shorter_twin(run_config: Config) -> str | None:
    """Seed an empty run folder from the finished run of its workdir that differs from it only in fewer
    train.epochs (the most of them): its last checkpoint, metrics and per-epoch figures. The learning rate
    is constant and the data order is a function of (seed, epoch), so its epochs are this run's first ones
    and resuming from them trains what a run from step 0 trains. Returns the twin's folder, or None."""
    if has_checkpoints(run_config.run_dir) or not os.path.isdir(run_config.workdir):
        return None
    wanted = {k: v for k, v in training_inputs(run_config).items() if k != "train.epochs"}
    twins = []
    for name in os.listdir(run_config.workdir):
        folder = os.path.join(run_config.workdir, name)
        saved = saved_config(folder) if folder != run_config.run_dir else None
        if saved is None or saved.train.epochs >= run_config.train.epochs:
            continue
        inputs = {k: v for k, v in training_inputs(saved).items() if k != "train.epochs"}
        if inputs == wanted and (done := _finished(folder, saved.train.epochs)) is not None:
            twins.append((saved.train.epochs, folder, done["step"]))
    sharding.barrier("shorter twins looked for")  # by every process, before the main one seeds the folder
    if not twins:
        return None
    epochs, twin, step = max(twins)
    if sharding.is_main():
        _copy_twin(twin, step, run_config.run_dir)
    sharding.barrier("run folder seeded from its shorter twin")
    logger.info(f"{run_config.run_dir}: starting from the {epochs} epochs of {twin} (the same run but train.epochs)")
    return twin


def _copy_twin(twin: str, step: int, run_dir: str) -> None:
    """The twin's records, then its checkpoint at `step` under a temporary name renamed into ckpt/: a kill before
    the rename leaves a folder without checkpoints, which the next call seeds again."""
    os.makedirs(run_dir, exist_ok=True)
    for entry in os.listdir(twin):
        if entry not in _TWIN_SKIPS and not entry.startswith("z_"):
            source, target = os.path.join(twin, entry), os.path.join(run_dir, entry)
            if os.path.isdir(source):
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
    partial = os.path.join(run_dir, f".twin-ckpt-{step}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(os.path.join(twin, "ckpt", str(step)), partial)
    os.makedirs(os.path.join(run_dir, "ckpt"), exist_ok=True)
    os.replace(partial, os.path.join(run_dir, "ckpt", str(step)))


def _same_run_under_another_name(run_config: Config, key: str) -> Config:
    """A run of workdir with the same training key under another name (an ablation arm equal to the baseline),
    if there is one, else run_config: a config is trained once whatever its name."""
    suffix = f"-{key[:8]}"
    names = (
        sorted(n for n in os.listdir(run_config.workdir) if n.endswith(suffix))
        if os.path.isdir(run_config.workdir)
        else []
    )
    for name in names:
        saved = saved_config(os.path.join(run_config.workdir, name))
        if saved is not None and training_key(saved) == key:
            logger.info(f"{run_config.run_dir}: the same training key as {name}; using that run")
            return dataclasses.replace(run_config, name=name)
    return run_config
