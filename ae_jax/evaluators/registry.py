"""Evaluators over a trained run, chosen by name (config `eval.names`, `ae-jax eval --evals`).

Each evaluator is a function of a `RunContext` (config, the run's parameters and encode/decode functions,
a split's z-points, real images, the judge) and an output folder; it writes its figures and returns
(numbers, figures). `run` refuses unknown names before any work, then runs each evaluator unless the
result.json in its folder was made from the same inputs (its config sections and the digests of the
artefacts it reads), and writes config.json beside every result.

To add one: write `def my_eval(ctx, folder) -> (numbers, figures)` and register it in EVALUATORS with the
config sections it reads and a function giving the digests of what else it reads.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import config as config_lib
from ae_jax import stages
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


@dataclasses.dataclass
class RunContext:
    """Everything an evaluator may read, each loaded once and only when first asked for."""

    config: Config
    out_dir: str  # evaluators' outputs: out_dir/<evaluator>/
    run_dir: str | None = None  # a trained run; None: z-points from z_file only
    z_file: str | None = None  # z-points to analyse instead of the run's encoded split
    judge_dir: str | None = None
    shared_dir: str | None = None  # where per-run evaluators write instead, shared by every study of the run
    log: Callable[[str], None] = print
    _memo: dict = dataclasses.field(default_factory=dict, repr=False)

    def _once(self, name: str, build: Callable):
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    def run(self):
        """(config, model, params) of the trained run."""
        from ae_jax.train.loop import load_run

        if not self.run_dir:
            raise ValueError("this evaluator needs a trained run folder; only z-points were given")
        return self._once("run", lambda: load_run(self.run_dir))

    def params_digest(self) -> str | None:
        if not self.run_dir:
            return None
        return self._once("params_digest", lambda: stages.arrays_digest(jax.tree.leaves(self.run()[2])))

    def z_path(self) -> str:
        """The z-points file: z_file, or the run's split (config eval.split), encoded if its record is stale."""
        from ae_jax.evaluators import encode

        if self.z_file:
            return self.z_file
        return self._once(
            "z_path", lambda: encode.ensure_encoded(self.run_dir, self.config.eval.split, self.run(), self.log)
        )

    def z(self) -> np.ndarray:
        from ae_jax.evaluators.encode import load_z

        return self._once("z", lambda: load_z(self.z_path()))

    def z_digest(self) -> str:
        return self._once("z_digest", lambda: stages.file_digest(self.z_path()))

    def ids(self):
        """The ids (file names) of the z-points' images, when written beside them."""
        path = os.path.splitext(self.z_path())[0] + "_ids.npy"
        return np.load(path) if os.path.isfile(path) else None

    def components(self) -> dict:
        """Per-component statistics of the z-points under the distribution settings (distribution.components)."""
        from ae_jax.evaluators import distribution

        return self._once(
            "components", lambda: jax.device_get(distribution.components(self.z(), self.config.distribution))
        )

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images in [0, 1] decoded from z-points, in batches."""
        _, model, params = self.run()
        fn = self._once("decode_fn", lambda: jax.jit(lambda p, z: model.apply({"params": p}, z, method="decode")))
        return np.concatenate([np.asarray(fn(params, jnp.asarray(z[i : i + 256]))) for i in range(0, len(z), 256)])

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Reconstructions in [0, 1] of uint8 images (decode after encode)."""
        _, model, params = self.run()

        def build():
            return jax.jit(
                lambda p, x: model.apply(
                    {"params": p}, x.astype(jnp.float32) / 255.0, method=lambda m, x: m.decode(m.encode(x))
                )
            )

        return np.asarray(self._once("reconstruct_fn", build)(params, jnp.asarray(images)))

    def real_images(self) -> np.ndarray:
        """The held-out (valid) images of the run's data, uint8."""
        from ae_jax.data import datasets

        return self._once("valid", lambda: datasets.load_split(self.config.data, "valid", self.config.seed).images)

    def judge(self) -> Callable[[np.ndarray], np.ndarray]:
        from ae_jax.train.judge import load_judge

        if not self.judge_dir:
            raise ValueError("the judge evaluator needs a judge folder (--judge DIR, from `ae-jax judge`)")
        return self._once("judge", lambda: load_judge(self.judge_dir))


# ---------------------------------------------------------------------------------------------
# The evaluators.


def reconstruction(ctx: RunContext, folder: str) -> tuple[dict, dict]:
    """Held-out reconstruction metrics (per-image means over train.eval_images valid images) and a grid."""
    from ae_jax import sharding
    from ae_jax.train import loop

    config, model, params = ctx.run()
    t = ctx.config.train
    images = ctx.real_images()
    metrics = loop.make_held_out_metrics(model, config, sharding.data_mesh())(params, images[: t.eval_images or None])
    grid = loop.reconstruction_grid(
        loop.make_reconstruct_fn(model, config),
        config,
        params,
        np.asarray(images[: t.grid_images]),
        os.path.join(folder, "reconstructions.png"),
        f"{config.name}: held-out images",
    )
    n = min(len(images), t.eval_images or len(images))
    return {**metrics, "eval_images": n}, {"reconstructions": grid}


def encode_points(ctx: RunContext, folder: str) -> tuple[dict, dict]:
    """The z-points of the split (encoded once per parameters): where they are, how many, their digest."""
    z = ctx.z()
    return {"path": ctx.z_path(), "n_points": int(z.shape[0]), "z_dim": int(z.shape[1]), "sha256": ctx.z_digest()}, {}


def distribution(ctx: RunContext, folder: str) -> tuple[dict, dict]:
    """Per-component distributions, radii, covariance, PCA and t-SNE of the z-points."""
    from ae_jax.evaluators.distribution import analyze

    summary = analyze(ctx.z(), folder, ctx.config.distribution, ctx.ids(), ctx.config.seed, ctx.components(), ctx.log)
    return summary, {name: os.path.join(folder, name) for name in summary["figures"]}


def generators(ctx: RunContext, folder: str) -> tuple[dict, dict]:
    """Generated z-points against the data's box and k-NN manifold, their radii, decoded grids."""
    from ae_jax.evaluators.generators import sweep

    decoding = (
        dict(decode=ctx.decode, real_images=ctx.real_images(), reconstruct=ctx.reconstruct) if ctx.run_dir else {}
    )
    numbers = sweep(ctx.z(), ctx.components(), ctx.config.generators, folder, ctx.config.seed, log=ctx.log, **decoding)
    return numbers, numbers.pop("figures")


def judge_scores(ctx: RunContext, folder: str) -> tuple[dict, dict]:
    """Judge-feature Frechet distance and k-NN precision/recall of each generator's decoded points."""
    from ae_jax.evaluators import generators
    from ae_jax.report import pages

    rows = generators.judge_scores(
        ctx.z(),
        ctx.config.generators,
        ctx.config.seed,
        ctx.decode,
        ctx.judge(),
        ctx.real_images(),
        ctx.reconstruct,
        ctx.config.judge.precision_k,
    )
    pages.write_csv(rows, os.path.join(folder, "judge_scores.csv"))
    return {"rows": rows}, {}


def intrinsic_dimension(ctx: RunContext, folder: str) -> tuple[dict, dict]:
    """TwoNN dimension vs scale of the z-points, of a Gaussian with their full covariance (the space-filling
    null), and of the true factors when the data has them (the embedded faces)."""
    from ae_jax.data import datasets
    from ae_jax.evaluators import intrinsic_dimension
    from ae_jax.report import pages

    cfg = ctx.config
    rows = intrinsic_dimension.dimension_rows(ctx.z(), cfg.intrinsic, cfg.seed)
    n_factors = None
    if cfg.data.name == "faces":
        labels = datasets.load_split(cfg.data, "train", cfg.seed).labels
        rows["true factors"] = intrinsic_dimension.dimension_vs_scale(
            labels, cfg.intrinsic.min_points, cfg.seed, cfg.intrinsic.max_points
        )
        n_factors = labels.shape[1]
    png = intrinsic_dimension.dimension_figure(rows, n_factors, os.path.join(folder, "intrinsic_dimension.png"))
    pages.write_csv(
        [dict(set=k, **r) for k, rs in rows.items() for r in rs], os.path.join(folder, "intrinsic_dimension.csv")
    )
    return {"rows": rows, "n_factors": n_factors}, {"intrinsic_dimension": png}


@dataclasses.dataclass(frozen=True)
class Evaluator:
    fn: Callable[[RunContext, str], tuple[dict, dict]]
    sections: tuple[str, ...]  # the config sections it reads
    inputs: Callable[[RunContext], dict]  # digests of the artefacts it reads
    per_run: bool = False  # its output depends on the run only, not on the study
    needs_run: bool = False
    needs_judge: bool = False
    format: int = 1  # bump when the same inputs would give other numbers


def _histogram(ctx: RunContext) -> dict:
    d = ctx.config.distribution
    return {"bin_width": d.bin_width, "hist_range": d.hist_range}


def _data(ctx: RunContext) -> dict:
    from ae_jax.train.runs import training_inputs_of

    return training_inputs_of(ctx.config, "data")


EVALUATORS: dict[str, Evaluator] = {
    "reconstruction": Evaluator(
        reconstruction,
        (),
        lambda c: {
            "params": c.params_digest(),
            "data": _data(c),
            "seed": c.config.seed,
            "train": {k: getattr(c.config.train, k) for k in ("eval_images", "grid_images", "batch_size")},
        },
        per_run=True,
        needs_run=True,
    ),
    "encode": Evaluator(encode_points, (), lambda c: {"z": c.z_digest(), "split": c.config.eval.split}, per_run=True),
    "distribution": Evaluator(
        distribution, ("distribution",), lambda c: {"z": c.z_digest(), "seed": c.config.seed}, per_run=True
    ),
    "generators": Evaluator(
        generators,
        ("generators",),
        lambda c: {
            "z": c.z_digest(),
            "params": c.params_digest(),
            "histogram": _histogram(c),
            "seed": c.config.seed,
            "data": _data(c) if c.run_dir else None,
        },
    ),
    "judge": Evaluator(
        judge_scores,
        ("generators", "judge"),
        lambda c: {
            "z": c.z_digest(),
            "params": c.params_digest(),
            "seed": c.config.seed,
            "data": _data(c),
            "judge": stages.file_digest(os.path.join(c.judge_dir, "judge.json")),
        },
        needs_run=True,
        needs_judge=True,
        format=2,  # 2: the real-vs-real reference row
    ),
    "intrinsic_dimension": Evaluator(
        intrinsic_dimension,
        ("intrinsic",),
        lambda c: {
            "z": c.z_digest(),
            "seed": c.config.seed,
            "data": _data(c) if c.config.data.name == "faces" else None,
        },
        per_run=True,
    ),
}


def check(config: Config, names: Sequence[str], has_run: bool = True, has_judge: bool = True) -> None:
    """Refuse, before any work, unknown evaluator names and evaluators whose inputs are missing (a run to decode
    with, a judge); the config's generator specs were checked when it was read."""
    unknown = [n for n in names if n not in EVALUATORS]
    if unknown:
        raise config_lib.ConfigError(
            f"unknown evaluator(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(EVALUATORS)}"
        )
    for n in names:
        if EVALUATORS[n].needs_run and not has_run:
            raise ValueError(f"evaluator {n!r} needs a trained run folder, not z-points alone")
        if EVALUATORS[n].needs_judge and not has_judge:
            raise ValueError(f"evaluator {n!r} needs a judge folder (--judge DIR, from `ae-jax judge`)")


def folder_of(ctx: RunContext, name: str, key: str) -> str:
    """out_dir/<name>; for a per-run evaluator of a study, shared_dir/<name>-<key8>, so that studies asking
    for different settings of the same run each keep theirs."""
    if EVALUATORS[name].per_run and ctx.shared_dir:
        return os.path.join(ctx.shared_dir, f"{name}-{key[:8]}")
    return os.path.join(ctx.out_dir, name)


def _clear(folder: str) -> None:
    """Empty an evaluator's folder so nothing of an older config stays beside the new result; a non-empty
    folder that an evaluator did not write (no config.json) is refused rather than deleted."""
    if os.path.isdir(folder) and os.listdir(folder):
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise ValueError(f"{folder} exists and holds files that ae_jax did not write; choose another --out")
        shutil.rmtree(folder)
    os.makedirs(folder, exist_ok=True)


def run(ctx: RunContext, names: Sequence[str] | None = None) -> dict[str, Result]:
    """Run the named evaluators (default: config eval.names) in order, reusing results whose inputs match."""
    names = tuple(names or ctx.config.eval.names)
    check(ctx.config, names, bool(ctx.run_dir), bool(ctx.judge_dir))
    config_dict = config_lib.to_dict(ctx.config)
    results = {}
    for name in names:
        ev = EVALUATORS[name]
        inputs = {"evaluator": name, "format": ev.format, **{s: config_dict[s] for s in ev.sections}, **ev.inputs(ctx)}
        folder = folder_of(ctx, name, stages.digest(inputs))
        record_path = os.path.join(folder, "result.json")
        record = stages.reusable(f"{name} ({folder})", record_path, inputs, ctx.log)
        reused = record is not None
        if not reused:
            _clear(folder)
            config_lib.save(ctx.config, os.path.join(folder, "config.json"))  # first: marks the folder as ours
            numbers, figures = ev.fn(ctx, folder)
            figures = {k: os.path.relpath(v, folder) for k, v in figures.items()}
            stages.record(record_path, inputs, evaluator=name, numbers=numbers, figures=figures)
            record = stages.read_json(record_path)  # a fresh result reads exactly as a reused one will
        figures = {k: os.path.join(folder, v) for k, v in record["figures"].items()}
        results[name] = Result(name, folder, record["key"], reused, record["numbers"], figures)
    return results
