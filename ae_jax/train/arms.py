"""Ablation arms trained as one program: `ae-jax train --config X --arms KEY=V1,V2 [--arms KEY2=...]` trains
every combination as one program of stacked models over data loaded once (ae_jax.train.loop.train_together),
each into an ordinary run folder of its own.

Arms may differ only in settings that keep the program's shapes and code: the seed, the KL weight, the
initialiser, the learning rate and the task's input settings.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

from ae_jax import config as config_lib
from ae_jax import stages
from ae_jax.config import Config, ConfigError

ARM_KEYS = (
    "seed",
    "model.kl_weight",
    "model.init",
    "train.learning_rate",
    "data.task",
    "data.noise_std",
    "data.drop_rate",
)
IGNORED_KEYS = ("name",)  # may differ between arms without touching the program
# train.arms_program=auto by backend: what benchmarks/arms_bench.py measured fastest (benchmarks/README.md). On a
# CPU one model already keeps every core busy and arms trained one after another finish soonest; GPUs unmeasured,
# map because cuDNN runs the grouped convolutions a vmap makes slowly.
AUTO_PROGRAMS = {"cpu": "separate", "gpu": "map", "tpu": "vmap"}


def _refusal(keys: Sequence[str]) -> ConfigError:
    return ConfigError(
        f"arms trained together may differ only in {', '.join(ARM_KEYS)}; {', '.join(keys)} changes the program "
        "(its shapes, layers or loop): train those arms one by one, e.g. with --set"
    )


def parse(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`KEY=V1,V2,...` specs -> [(key, values)], refused naming the spec or key."""
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        items = [v.strip() for v in values.split(",")] if sep else []
        if not key or not items or not all(items):
            raise ConfigError(f"--arms {spec!r}: expected KEY=V1,V2,... (e.g. --arms model.kl_weight=0,1e-6,1e-4)")
        if key not in ARM_KEYS:
            raise _refusal([key])
        if key in (k for k, _ in axes):
            raise ConfigError(f"--arms names {key} twice: give all its values in one --arms {key}=V1,V2,...")
        axes.append((key, items))
    return axes


def arm_configs(config: Config, specs: Sequence[str]) -> list[Config]:
    """One config per combination of the specs' values, named `<name>-<key>=<value>...`, validated."""
    axes = parse(specs)
    arms = []
    for values in itertools.product(*(items for _, items in axes)):
        settings = [f"{key}={value}" for (key, _), value in zip(axes, values)]
        suffix = "-".join(f"{key.rsplit('.', 1)[-1]}={value}" for (key, _), value in zip(axes, values))
        arms.append(config_lib.override(config, settings + [f"name={config.name}-{suffix}"]))
    check_same_program(arms)
    return arms


def check_same_program(configs: Sequence[Config]) -> None:
    """Refuse configs that cannot be trained as one program, naming the settings in which they differ; and
    two arms with one run folder."""
    flat = [stages.flatten(config_lib.to_dict(c)) for c in configs]
    differing = sorted({k for f in flat[1:] for k, v in f.items() if v != flat[0][k]})
    other = [k for k in differing if k not in ARM_KEYS + IGNORED_KEYS]
    if other:
        raise _refusal(other)
    run_dirs = [c.run_dir for c in configs]
    if len(set(run_dirs)) != len(run_dirs):
        raise ConfigError(f"two arms would write the same run folder: {sorted(run_dirs)}")


def program_groups(configs: Sequence[Config]) -> list[list[Config]]:
    """The configs split into groups that can each be trained as one program (equal in every setting but
    ARM_KEYS and IGNORED_KEYS), in order of first appearance."""
    groups: dict[str, list[Config]] = {}
    for config in configs:
        flat = stages.flatten(config_lib.to_dict(config))
        shared = {k: v for k, v in flat.items() if k not in ARM_KEYS + IGNORED_KEYS}
        groups.setdefault(json.dumps(shared, sort_keys=True, default=str), []).append(config)
    return list(groups.values())


def program(config: Config, backend: str) -> str:
    """The arms program train.arms_program names (vmap, unroll, map or separate), auto resolved for `backend`."""
    chosen = config.train.arms_program
    return AUTO_PROGRAMS.get(backend, "vmap") if chosen == "auto" else chosen
