"""Studies: a named experiment is presets plus config overrides at two sizes (smoke: the tiny preset, seconds;
full: the study's real setting) and a function that runs its models through `pipeline.study_model`, composes
evaluators and returns report sections and tables.

`run_study` writes into <out>/<study>/ (<out>/<study>-smoke/ at smoke size, every page and results.json
marked so): index.html (led by what every evaluator found, ae_jax.studies.views),
one CSV per table, config.json (the study's settings) and results.json (each model's measured numbers, config
and config hash, and the tables). ae_jax.studies.catalogue registers the studies, the demo among them. A study's
`--set` keys must be of config sections its models read: every model's (MODEL_SECTIONS) and those of the
evaluators it declares.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

from ae_jax import config as config_lib
from ae_jax import sharding, stages
from ae_jax.config import Config
from ae_jax.evaluators import registry
from ae_jax.report import pages
from ae_jax.studies import pipeline, views


@dataclasses.dataclass(frozen=True)
class StudyOutput:
    sections: list[tuple[str, list[str]]]
    models: list[pipeline.ModelResult]
    tables: dict[str, list[dict]]  # file stem -> rows


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    description: str
    run: Callable[[dict, str, list[str]], StudyOutput]  # (settings, out dir, overrides)
    smoke: dict  # settings: presets ("ae", "vae", ...), "overrides" ({config key: typed value}), study parameters
    full: dict
    evaluators: tuple[str, ...]  # every evaluator its models may run: their config sections are the ones it reads
    # The configs its run trains, (settings, overrides) -> configs: given, the seeds' runs train first, those that
    # can share a program as arms of one (pipeline.train_arms_together).
    configs: Callable[[dict, list[str]], list[Config]] | None = None


STUDIES: dict[str, Study] = {}
MODEL_SECTIONS = ("seed", "name", "workdir", "data", "model", "train", "eval")  # the config sections every model reads


def register(study: Study) -> Study:
    STUDIES[study.name] = study
    return study


def model_config(preset: str, settings: dict, overrides: list[str], **extra) -> Config:
    """The preset with the study's typed overrides, then `extra` (e.g. an ablation arm), then the user's --set."""
    return config_lib.load(preset, overrides, {**settings.get("overrides", {}), **extra})


def study_named(name: str) -> Study:
    """The registered study `name`; an unknown name is refused naming the allowed ones."""
    if name not in STUDIES:
        hint = config_lib.did_you_mean(name, STUDIES)
        raise ValueError(f"unknown study {name!r}{hint}; studies: {', '.join(STUDIES)}, all")
    return STUDIES[name]


def studies_named(name: str) -> list[Study]:
    """The studies a command line names: one, or every one for 'all'."""
    return list(STUDIES.values()) if name == "all" else [study_named(name)]


def sections_read(study: Study) -> set[str]:
    """The config sections the study's models read: every model's and those of the evaluators it declares."""
    return {*MODEL_SECTIONS, *(s for name in study.evaluators for s in registry.evaluators()[name].sections)}


def _key(override: str) -> str:
    return override.split("=", 1)[0].strip()


def _section(override: str) -> str:
    return _key(override).split(".")[0]


def overrides_for(study: Study, overrides: list[str]) -> list[str]:
    """The overrides whose section the study reads (with `all`, each study takes the --set keys it uses)."""
    return [o for o in overrides if _section(o) in sections_read(study)]


def check_overrides(studies: list[Study], overrides: list[str]) -> None:
    """Refuse, before any work, an unknown key or bad value, and a key of a section none of `studies` reads."""
    config_lib.from_dict(config_lib.parse_overrides(list(overrides)))
    read = set().union(*map(sections_read, studies))
    unused = [_key(o) for o in overrides if _section(o) not in read]
    if unused:
        who = f"study {studies[0].name!r}" if len(studies) == 1 else "any study"
        sections = [f.name for f in dataclasses.fields(Config) if f.name in read]
        raise config_lib.ConfigError(f"--set {unused[0]}: not used by {who}; sections used: {', '.join(sections)}")


SMOKE_BANNER = "smoke size: the tiny preset, not a result"


def study_folder(out_dir: str, name: str, full: bool) -> str:
    """<out>/<study> at full size, <out>/<study>-smoke at smoke size: a smoke run never overwrites a result."""
    return os.path.join(out_dir, name if full else f"{name}-smoke")


def seed_overrides(overrides: Sequence[str], seeds: int) -> list[tuple[int, list[str]]]:
    """(seed, overrides) of each of `seeds` replicates: seed = the --set seed (or the default) + 0, 1, ...; a
    single replicate keeps the overrides as given."""
    if seeds < 1:
        raise config_lib.ConfigError(f"--seeds must be >= 1, got {seeds}")
    first = config_lib.from_dict(config_lib.parse_overrides([o for o in overrides if _key(o) == "seed"])).seed
    if seeds == 1:
        return [(first, list(overrides))]
    return [(first + i, [*overrides, f"seed={first + i}"]) for i in range(seeds)]


def _replicates(study: Study, settings: dict, out: str, replicates: list[tuple[int, list[str]]]) -> StudyOutput:
    """The study run once per (seed, overrides): every seed's models, its tables' rows (with a seed column when
    there are several), and the first seed's sections (its figures)."""
    if study.configs and len(replicates) > 1:
        pipeline.train_arms_together([c for _, o in replicates for c in study.configs(settings, o)])
    runs = [(seed, study.run(settings, out, o)) for seed, o in replicates]
    tables = {
        stem: [{**({"seed": seed} if len(runs) > 1 else {}), **row} for seed, o in runs for row in o.tables[stem]]
        for stem in runs[0][1].tables
    }
    return StudyOutput(runs[0][1].sections, [m for _, o in runs for m in o.models], tables)


def run_study(name: str, full: bool, out_dir: str, overrides: list[str] = (), seeds: int = 1) -> str:
    """Run one study into its folder (study_folder), once per seed; returns the path of its page. Under several
    processes every process runs it (ae_jax.evaluators.registry.run) and process 0 writes its files."""
    study = study_named(name)
    check_overrides([study], overrides)
    settings = study.full if full else study.smoke
    out = study_folder(out_dir, name, full)
    overrides = [f"workdir={os.path.join(out_dir, 'runs')}"] + list(overrides)
    replicates = seed_overrides(overrides, seeds)
    size = {"size": "full" if full else "smoke", **({} if full else {"banner": SMOKE_BANNER})}
    stages.write_json(
        os.path.join(out, "config.json"),
        {"study": name, **size, "settings": config_lib.plain(settings), "overrides": overrides, "seeds": seeds},
    )
    start = time.perf_counter()
    output = _replicates(study, settings, out, replicates)
    for stem, rows in output.tables.items():
        pages.write_csv(rows, os.path.join(out, f"{stem}.csv"))
    models = [m.to_json() for m in output.models]
    stages.write_json(
        os.path.join(out, "results.json"),
        {
            "study": name,
            **size,
            "overrides": overrides,
            "seeds": seeds,
            "seconds": time.perf_counter() - start,
            "models": models,
            "tables": output.tables,
        },
    )
    first = [
        views.findings(output.models[: len(output.models) // seeds]),
        ("Study", [pages.paragraph(" ".join(study.description.split()))]),
        views.claims_section(models),
        *([views.across_seeds_section(output.models)] if seeds > 1 else []),
    ]
    title = f"ae_jax study: {name}"
    page = pages.write_page(os.path.join(out, "index.html"), title, first + output.sections, size.get("banner", ""))
    sharding.barrier(f"study {name} written")  # no process reads the study's files before process 0 has written them
    return page
