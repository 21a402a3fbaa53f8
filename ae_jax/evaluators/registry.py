"""Evaluators over a trained run, chosen by name (config `eval.names`, `ae-jax eval --evals`).

Each evaluator is one module of this package: a function of a `RunContext` (config, the run's parameters
and decode functions, real images, the judge; its modules add the z-points and the generators' draws) and
an output folder that writes its figures and returns (numbers, figures); a view of its `Result` for reports
(headline numbers, table rows, figures, findings sentences); and one `register(Evaluator(...))` call naming
the config sections and artefacts it reads. Every module of the package is imported when the evaluators
are first asked for, so a new module is found without editing another file.

`run` refuses unknown names before any work, then runs each evaluator unless the result.json in its folder
was made from the same inputs (its config sections and the digests of the artefacts it reads), and writes
config.json beside every result. To add one, write a module here (or, as tests/test_toy_evaluator.py does,
anywhere that is imported before the run):

    def measure(ctx, folder):  # -> (JSON-ready numbers, {figure name: PNG path in folder})
        z = encode.points(ctx)
        return {"max_abs": float(abs(z).max())}, {}

    def view(result, label, ks):
        n = result.numbers
        return View(headline={"max |z|": n["max_abs"]}, findings=[f"{label}: max |z| {n['max_abs']:.3g}."])

    register(Evaluator("max_abs", measure, view, inputs=lambda ctx: {"z": encode.points_digest(ctx)}))

and name it in `eval.names`, `ae-jax eval --evals` or a study's evaluators.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import shutil
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import config as config_lib
from ae_jax import sharding, stages
from ae_jax.config import Config


@dataclasses.dataclass(frozen=True)
class Result:
    """What one evaluator measured: JSON-ready numbers, figure paths, and the key of its inputs."""

    evaluator: str
    folder: str
    key: str
    reused: bool
    numbers: dict
    figures: dict[str, str]  # name -> path of a PNG

    def to_json(self) -> dict:
        return {"key": self.key, "folder": self.folder, "numbers": self.numbers, "figures": self.figures}

    @classmethod
    def from_json(cls, evaluator: str, record: dict) -> Result:
        """A result as a study's results.json records it (ModelResult.to_json)."""
        return cls(evaluator, record["folder"], record["key"], True, record["numbers"], record["figures"])


@dataclasses.dataclass(frozen=True)
class View:
    """An evaluator's result as a report shows it: numbers for side-by-side tables, its own table rows, its
    figures (name -> path), sentences saying what it found, the figures that show that, and warnings (what makes
    its numbers untrustworthy, e.g. a judge worse than its trivial baseline)."""

    headline: dict = dataclasses.field(default_factory=dict)
    rows: list[dict] = dataclasses.field(default_factory=list)
    figures: dict[str, str] = dataclasses.field(default_factory=dict)
    findings: list[str] = dataclasses.field(default_factory=list)
    finding_figures: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunContext:
    """Everything an evaluator may read, each loaded once (`memo`) and only when first asked for."""

    config: Config
    out_dir: str  # evaluators' outputs: out_dir/<evaluator>-<key8>/
    run_dir: str | None = None  # a trained run; None: z-points from z_file only
    z_file: str | None = None  # z-points to analyse instead of the run's encoded split
    judge_dir: str | None = None
    shared_dir: str | None = None  # where per-run evaluators write instead, shared by every study of the run
    _memo: dict = dataclasses.field(default_factory=dict, repr=False)

    def memo(self, name: str, build: Callable):
        """build(), computed on the first call for `name` and kept for every evaluator of this context."""
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    def run(self):
        """(config, model, params) of the trained run."""
        from ae_jax.train.loop import load_run

        if not self.run_dir:
            raise ValueError("this evaluator needs a trained run folder; only z-points were given")
        return self.memo("run", lambda: load_run(self.run_dir))

    def params_digest(self) -> str | None:
        if not self.run_dir:
            return None
        return self.memo("params_digest", lambda: stages.arrays_digest(jax.tree.leaves(self.run()[2])))

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images in [0, 1] decoded from z-points, in batches."""
        _, model, params = self.run()
        fn = self.memo("decode_fn", lambda: jax.jit(lambda p, z: model.apply({"params": p}, z, method="decode")))
        return np.concatenate([np.asarray(fn(params, jnp.asarray(z[i : i + 256]))) for i in range(0, len(z), 256)])

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Reconstructions in [0, 1] of uint8 images (decode after encode)."""
        from ae_jax.data.datasets import to_unit

        _, model, params = self.run()

        def build():
            return jax.jit(
                lambda p, x: model.apply({"params": p}, to_unit(x), method=lambda m, x: m.decode(m.encode(x)))
            )

        return np.asarray(self.memo("reconstruct_fn", build)(params, jnp.asarray(images)))

    def real_images(self) -> np.ndarray:
        """The held-out (valid) images of the run's data, uint8."""
        from ae_jax.data import datasets

        return self.memo("valid", lambda: datasets.load_split(self.config.data, "valid", self.config.seed).images)

    def judge(self) -> Callable[[np.ndarray], np.ndarray]:
        from ae_jax.train.judge import load_judge

        if not self.judge_dir:
            raise ValueError("the judge evaluator needs a judge folder (--judge DIR, from `ae-jax judge`)")
        return self.memo("judge", lambda: load_judge(self.judge_dir))


@dataclasses.dataclass(frozen=True)
class Evaluator:
    name: str
    fn: Callable[[RunContext, str], tuple[dict, dict]]  # (context, folder) -> (numbers, figures)
    view: Callable[[Result, str, Sequence[float]], View]  # (result, model label, report ks) -> View
    inputs: Callable[[RunContext], dict]  # digests of the artefacts it reads
    sections: tuple[str, ...] = ()  # the config sections it reads
    title: str = ""  # its report heading (default: its name)
    per_run: bool = False  # its output depends on the run only, not on the study
    needs_run: bool = False
    needs_judge: bool = False
    format: int = 1  # bump when the same inputs would give other numbers


EVALUATORS: dict[str, Evaluator] = {}


def register(evaluator: Evaluator) -> Evaluator:
    """Make an evaluator runnable by its name (a module of this package calls this when imported)."""
    EVALUATORS[evaluator.name] = evaluator
    return evaluator


def evaluators() -> dict[str, Evaluator]:
    """Every registered evaluator, after importing each module of this package (each registers its own)."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")
    return EVALUATORS


def data_inputs(ctx: RunContext) -> dict:
    """The run's data settings (the training inputs under data.*), for evaluators that read its images."""
    from ae_jax.train.runs import training_inputs_of

    return training_inputs_of(ctx.config, "data")


def view(result: Result, label: str, ks: Sequence[float]) -> View:
    """The report view of a result; for an evaluator no longer registered, its scalar numbers and figures."""
    ev = evaluators().get(result.evaluator)
    if ev is not None:
        return ev.view(result, label, ks)
    scalars = {k: v for k, v in result.numbers.items() if isinstance(v, (int, float, str))}
    return View(headline=scalars, rows=[scalars], figures=result.figures)


def title(name: str) -> str:
    ev = evaluators().get(name)
    return (ev.title if ev else "") or name


def check(config: Config, names: Sequence[str], has_run: bool = True, has_judge: bool = True) -> None:
    """Refuse, before any work, unknown evaluator names and evaluators whose inputs are missing (a run to decode
    with, a judge); the config's generator specs were checked when it was read."""
    known = evaluators()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise config_lib.ConfigError(
            f"unknown evaluator(s) {', '.join(map(repr, unknown))}"
            f"{config_lib.did_you_mean(unknown[0], known)}; allowed: {', '.join(sorted(known))}"
        )
    for n in names:
        if known[n].needs_run and not has_run:
            raise ValueError(f"evaluator {n!r} needs a trained run folder, not z-points alone")
        if known[n].needs_judge and not has_judge:
            raise ValueError(f"evaluator {n!r} needs a judge folder (--judge DIR, from `ae-jax judge`)")


def folder_of(ctx: RunContext, name: str, key: str) -> str:
    """<out_dir>/<name>-<key8> (a per-run evaluator of a study: under shared_dir, shared by every study of the
    run), so that each setting keeps its own result and a changed setting never overwrites another's."""
    base = ctx.shared_dir if EVALUATORS[name].per_run and ctx.shared_dir else ctx.out_dir
    return os.path.join(base, f"{name}-{key[:8]}")


def _clear(folder: str) -> None:
    """Empty an evaluator's folder (process 0 does) so nothing of an older config stays beside the new result; a
    non-empty folder that an evaluator did not write (no config.json) is refused rather than deleted."""
    foreign = os.path.isdir(folder) and os.listdir(folder) and not os.path.isfile(os.path.join(folder, "config.json"))
    if sharding.agreed(bool(foreign)):  # every process has looked before process 0 deletes
        raise ValueError(f"{folder} exists and holds files that ae_jax did not write; choose another --out")
    if sharding.is_main():
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)


def run(ctx: RunContext, names: Sequence[str] | None = None) -> dict[str, Result]:
    """Run the named evaluators (default: config eval.names) in order, reusing results whose inputs match.

    Under several processes every process runs the same evaluators (their jitted work may span every process's
    devices) and process 0 alone writes; every result is read back only after a barrier, so all return the
    numbers process 0 wrote."""
    names = tuple(names or ctx.config.eval.names)
    check(ctx.config, names, bool(ctx.run_dir), bool(ctx.judge_dir))
    config_dict = config_lib.to_dict(ctx.config)
    results = {}
    for name in names:
        ev = EVALUATORS[name]
        inputs = {"evaluator": name, "format": ev.format, **{s: config_dict[s] for s in ev.sections}, **ev.inputs(ctx)}
        folder = folder_of(ctx, name, stages.digest(inputs))
        record_path = os.path.join(folder, "result.json")
        record = stages.reusable(f"{name} ({folder})", record_path, inputs)
        reused = record is not None
        if not reused:
            _clear(folder)
            config_lib.save(ctx.config, os.path.join(folder, "config.json"))  # first: marks the folder as ours
            numbers, figures = ev.fn(ctx, folder)
            figures = {k: os.path.relpath(v, folder) for k, v in figures.items()}
            stages.record(record_path, inputs, evaluator=name, numbers=numbers, figures=figures)
            sharding.barrier(f"{name} written")
            record = stages.read_json(record_path)  # a fresh result reads exactly as a reused one will
        figures = {k: os.path.join(folder, v) for k, v in record["figures"].items()}
        results[name] = Result(name, folder, record["key"], reused, record["numbers"], figures)
    return results
