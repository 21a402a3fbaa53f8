"""Studies: a named experiment is presets plus config overrides at two sizes (smoke: the tiny preset, seconds;
full: the study's real setting) and a function that runs its models through `pipeline.study_model`, composes
evaluators and returns report sections and tables.

`run_study` writes into <out>/<study>/: index.html (led by what every evaluator found, ae_jax.studies.views),
one CSV per table, config.json (the study's settings) and results.json (each model's measured numbers, config
and config hash, and the tables). ae_jax.studies.catalogue registers the studies, the demo among them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from ae_jax import config as config_lib
from ae_jax import stages
from ae_jax.config import Config
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
    run: Callable[[dict, str, list[str], Callable], StudyOutput]  # (settings, out dir, overrides, log)
    smoke: dict  # settings: presets ("ae", "vae", ...), "overrides" (config --set items) and study parameters
    full: dict


STUDIES: dict[str, Study] = {}


def register(study: Study) -> Study:
    STUDIES[study.name] = study
    return study


def model_config(preset: str, settings: dict, overrides: list[str], **extra: str) -> Config:
    """The preset with the study's overrides, then `extra` (e.g. an ablation arm), then the user's."""
    items = list(settings.get("overrides", ())) + [f"{k}={v}" for k, v in extra.items()] + list(overrides)
    return config_lib.load(preset, items)


def run_study(name: str, full: bool, out_dir: str, overrides: list[str] = (), log=print) -> str:
    """Run one study into out_dir/<name>/; returns the path of its page."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; studies: {', '.join(STUDIES)}")
    study = STUDIES[name]
    settings = study.full if full else study.smoke
    out = os.path.join(out_dir, name)
    overrides = [f"workdir={os.path.join(out_dir, 'runs')}"] + list(overrides)
    os.makedirs(out, exist_ok=True)
    stages.write_json(
        os.path.join(out, "config.json"),
        {"study": name, "size": "full" if full else "smoke", "settings": settings, "overrides": overrides},
    )
    start = time.perf_counter()
    output = study.run(settings, out, overrides, log)
    for stem, rows in output.tables.items():
        pages.write_csv(rows, os.path.join(out, f"{stem}.csv"))
    stages.write_json(
        os.path.join(out, "results.json"),
        {
            "study": name,
            "size": "full" if full else "smoke",
            "overrides": overrides,
            "seconds": time.perf_counter() - start,
            "models": [m.to_json() for m in output.models],
            "tables": output.tables,
        },
    )
    sentences, figures = views.findings(output.models)
    first = [
        (
            "Findings",
            [pages.paragraph(s) for s in sentences] + [pages.figure(p, "decoded z-points") for p in figures],
        ),
        ("Study", [pages.paragraph(" ".join(study.description.split()))]),
    ]
    return pages.write_page(os.path.join(out, "index.html"), f"ae_jax study: {name}", first + output.sections)
