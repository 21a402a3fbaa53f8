"""`ae-jax`: train, encode, eval (analyze, sample), judge and the studies (study, demo) from the command line.

Every command takes `--set section.key=value` overrides; evaluation commands read a run's config.json and
override only the settings after training (distribution, generators, judge, intrinsic, vae_latent, eval).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys


def _train(args) -> int:
    from ae_jax.train import runs
    from ae_jax.train.loop import exit_status, train_together

    configs = _train_configs(args)
    if args.resume:
        for config in configs:
            runs.refuse_resume_without_checkpoints(config)
    results = train_together(configs, resume=args.resume)
    for c in configs:
        print(f"run folder: {c.run_dir}")
    return exit_status(results)


def _train_configs(args) -> list:
    """The configs `ae-jax train` trains: run folders' own configs (--resume RUN_FOLDER ...), or --config with
    --set, one per arm with --arms."""
    from ae_jax import config as config_lib
    from ae_jax.config import ConfigError
    from ae_jax.train import runs
    from ae_jax.train.arms import arm_configs

    settings = list(args.set) + ([f"train.profile_steps={args.profile}"] if args.profile else [])
    if not args.run_folders:
        config = config_lib.load(args.config or "faces", settings)
        return arm_configs(config, args.arms) if args.arms else [config]
    if not args.resume:
        raise ConfigError(f"a run folder ({' '.join(args.run_folders)}) is given only to resume it: add --resume")
    if args.config or args.arms:
        raise ConfigError("--resume RUN_FOLDER reads the run's own config.json: leave out --config and --arms")
    return [runs.resume_config(folder, settings) for folder in args.run_folders]


def _encode(args) -> int:
    """Encode a split of a run into z-points; say how many, of what dimension, and where."""
    import numpy as np

    from ae_jax import config as config_lib
    from ae_jax.evaluators.encode import encode_run
    from ae_jax.train.loop import load_run
    from ae_jax.train.runs import load_run_config

    trained = load_run_config(args.run)
    data_overrides = config_lib.parse_overrides(args.set).get("data")
    # A folder of images is read at the run's channel count (and its image size, unless set otherwise).
    pinned = (
        [f"data.channels={trained.data.image_channels}"]
        if isinstance(data_overrides, dict)
        and data_overrides.get("name") == "images"
        and "channels" not in data_overrides
        else []
    )
    config = load_run_config(args.run, pinned + list(args.set))
    if config.data != trained.data and (not args.out or args.split == "all"):
        raise ValueError("--set changes the run's data: give one --split and --out for z-points of another dataset")
    _, model, params = load_run(args.run)
    written = encode_run(args.run, args.split, args.out, args.batch_size, run=(config, model, params))
    for split, path in written.items():
        n, z_dim = np.load(path, mmap_mode="r").shape
        print(f"{split}: {n:,} z-points of {z_dim} components in {path}")
    return 0


def _refuse_study_folder(folder: str) -> None:
    """A study's folder (its results.json or config.json names the study) is not a run: say so and which run
    folders to pass."""
    from ae_jax.stages import read_json

    records = [read_json(os.path.join(folder, name)) for name in ("results.json", "config.json")]
    study = next((r["study"] for r in records if isinstance(r, dict) and "study" in r), None)
    if study is None:
        return
    runs_dir = os.path.join(os.path.dirname(os.path.abspath(folder)), "runs")
    found = sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []
    raise ValueError(
        f"{folder} is the folder of study {study!r}, not a run: pass one of its runs, a run folder under {runs_dir}"
        + (f" ({', '.join(found)})" if found else "")
    )


def _evaluate(args, names: tuple[str, ...], extra: list[str] = ()) -> int:
    """Run evaluators on a run folder (or on --z z-points) into args.out; say where each result is, its headline
    numbers and what it found, and write the run's page <out>/index.html."""
    import jax

    from ae_jax import config as config_lib
    from ae_jax import sharding
    from ae_jax.evaluators import registry
    from ae_jax.report import pages
    from ae_jax.studies import views
    from ae_jax.train.runs import load_run_config

    overrides = list(args.set) + list(extra)
    if args.run:
        _refuse_study_folder(args.run)
        config = load_run_config(args.run, overrides)
    elif args.z:
        config = (
            config_lib.load(args.config, overrides)
            if args.config
            else config_lib.override(config_lib.Config(), overrides)
        )
    else:
        raise ValueError("give a run folder or --z FILE.npy")
    names = names or config.eval.names
    judge_dir = getattr(args, "judge", None)
    registry.check(config, names, bool(args.run), bool(judge_dir))
    out = args.out or os.path.join(args.run, "eval")
    ctx = registry.RunContext(config, out, run_dir=args.run, z_file=args.z, judge_dir=judge_dir)
    # traced by process 0 alone, as training is: the processes of one host would write the same trace files
    profile = getattr(args, "profile", False) and sharding.is_main() and os.path.join(out, "profile")
    with jax.profiler.trace(profile, create_perfetto_trace=True) if profile else contextlib.nullcontext():
        results = registry.run(ctx, names)
    shown = views.model_views(config.name, config.eval.report_ks, results)
    for name, result in results.items():
        state = "reused" if result.reused else "written"
        print(f"{name}: {state} in {result.folder} (result.json, {len(result.figures)} figures)")
        if shown[name].headline:
            print(f"  {pages.cells_line(shown[name].headline)}")
        for sentence in shown[name].warnings + shown[name].findings:
            print(f"  {sentence}")
    if profile:
        print(f"profile: {profile}")
    title = f"ae_jax eval: {args.run or args.z}"
    print(f"page: {pages.write_page(os.path.join(out, 'index.html'), title, views.run_sections(config.name, shown))}")
    return 0


def _eval(args) -> int:
    if args.z and not args.out:
        raise ValueError("--z needs --out FOLDER: the default <run>/eval needs a run folder")
    names = tuple(n.strip() for n in args.evals.split(",") if n.strip()) if args.evals else ()
    return _evaluate(args, names)


def _analyze(args) -> int:
    return _evaluate(args, ("distribution",))


def _sample(args) -> int:
    if args.param and not args.sampler:
        raise ValueError(f"--param {' '.join(args.param)} needs --sampler NAME (the generator it sets up)")
    extra = [f"generators.specs={' '.join([args.sampler, *args.param])}"] if args.sampler else []
    return _evaluate(args, ("generators",) + (("judge",) if args.judge else ()), extra)


def _judge(args) -> int:
    """Train the judge; say where it is and its held-out score against its trivial baseline."""
    from ae_jax import config as config_lib
    from ae_jax.evaluators import judge as judge_evaluator
    from ae_jax.train.judge import train_judge

    info = train_judge(config_lib.load(args.config, args.set), args.out)
    print(f"judge: {args.out}")
    print(f"  {judge_evaluator.quality_sentence(judge_evaluator.quality(info))}")
    return 0


def _study(args) -> int:
    """Run the named study (or all of them) after refusing, before any work, an unknown name or unused --set key."""
    from ae_jax.report.pages import cells_line
    from ae_jax.studies.catalogue import check_overrides, overrides_for, run_study, studies_named
    from ae_jax.studies.views import headline_row, recorded_models

    studies = studies_named(args.name)
    check_overrides(studies, args.set)
    for study in studies:
        page = run_study(study.name, args.full, args.out, overrides_for(study, args.set), args.seeds)
        print(f"{study.name}: {page}")
        for label, shown in recorded_models(os.path.dirname(page)).items():
            print(f"  {cells_line(headline_row(label, shown))}")
            for warning in (w for view in shown.values() for w in view.warnings):
                print(f"  {warning}")
    return 0


def _demo(args) -> int:
    """`ae-jax demo` is `ae-jax study demo --full`; --quick is the smoke size."""
    return _study(argparse.Namespace(name="demo", full=not args.quick, out=args.out, set=args.set, seeds=1))


def _with_settings(p: argparse.ArgumentParser, example: str = "model.z_dim=64") -> None:
    """--set KEY=VALUE, its help showing an `example` the command accepts."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=f"override, e.g. {example}")


def _z_points(path: str) -> str:
    """--z: a readable 2-D float .npy of finite values, checked as the command line is read (before any folder)."""
    from ae_jax.evaluators.encode import load_z

    try:
        load_z(path)
    except (FileNotFoundError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return path


def _with_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="results", help="the page goes to <out>/<study>/index.html, runs to <out>/runs")


def _add_train(sub) -> None:
    """`ae-jax train`: a preset or JSON config, --set overrides, --resume (of run folders), and --arms grids."""
    p = sub.add_parser(
        "train",
        help="train an AE or VAE from a preset or JSON config, or resume run folders",
        description="Exit status: 0 when training completed; 130 (SIGINT) or 143 (SIGTERM) when a signal stopped it "
        "after saving a checkpoint; 1 when the loss became non-finite; 2 for bad input.",
    )
    p.add_argument(
        "run_folders",
        nargs="*",
        metavar="RUN_FOLDER",
        help="with --resume: run folders to continue with their own config.json (several: arms trained together)",
    )
    p.add_argument("--config", help="preset name or JSON file (may name a 'base' preset); default: faces")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override, e.g. model.z_dim=64; with --resume RUN_FOLDER only "
        "train.epochs, train.checkpoint_every_steps, train.keep_checkpoints and other settings that are not "
        "training inputs",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint (refused when the run folder holds none): "
        "ae-jax train --resume RUN_FOLDER [--set train.epochs=N], or --config RUN_FOLDER/config.json --resume",
    )
    p.add_argument(
        "--arms",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="train one arm per value as one program (repeat for a grid); a run folder <name>-<key>=<value> each; "
        "KEY: seed, model.kl_weight, model.init, train.learning_rate, data.task, data.noise_std, data.drop_rate",
    )
    p.add_argument(
        "--profile",
        type=int,
        metavar="STEPS",
        help="trace STEPS training steps after the first (compiling) one with jax.profiler into <run>/profile/ "
        "(TensorBoard's profile plugin or Perfetto: perfetto_trace.json.gz); train.profile_steps",
    )
    p.set_defaults(func=_train)


def _add_encode(sub) -> None:
    """`ae-jax encode`: a run folder, the split, the output file and the batch size."""
    p = sub.add_parser(
        "encode",
        help="encode a split of a trained run (or, with --set data.* and --out, of another dataset) into z-points",
        description="Encode a split of a run's dataset, or of another one given by --set data.name=... data.dir=... "
        "(read at the run's data.image_size and channel count; needs one --split and --out). Writes the z-points "
        ".npy and beside it <stem>_ids.npy, <stem>_labels.npy where the source has labels, and the stage record "
        "<stem>.json naming the data encoded. "
        "A folder of images (data.name=images) has no official split: each file's split is fixed by a hash of "
        "its path relative to data.dir, test and valid each holding about data.valid_fraction/2 of the files "
        "and train the rest.",
    )
    p.add_argument("run", help="run folder (checkpoints/<name>)")
    p.add_argument(
        "--split", default="train", help="train, valid, test or all (data.name=images: train is most of the folder)"
    )
    p.add_argument("--out", help="output .npy (default: <run>/z_<split>.npy; required for another dataset)")
    p.add_argument(
        "--batch-size", type=int, default=256, help="images per encoding step (a multiple of the device count)"
    )
    _with_settings(p, "data.name=images and data.dir=DIR (one --set each)")
    p.set_defaults(func=_encode)


_EVALUATOR_COMMANDS = (
    ("eval", _eval, "run evaluators (eval.names, or --evals) on a trained run"),
    ("analyze", _analyze, "the distribution evaluator: z-point statistics and figures"),
    ("sample", _sample, "the generators evaluator: generated z-points' hits, radii, decoded grids"),
)


def _add_evaluator_command(sub, name: str, func, help_text: str) -> None:
    """One evaluator command (eval, analyze, sample): a run folder or --z points, plus its own options."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("run", nargs="?", help="run folder (its eval.split is encoded when needed)")
    p.add_argument("--z", type=_z_points, help="z-points .npy (N, D) instead of a run folder (no decoding)")
    p.add_argument("--config", help="with --z: preset or JSON file for the settings (default: the defaults)")
    out_help = "output folder (default: <run>/eval; required with --z)" if name == "eval" else "output folder"
    p.add_argument("--out", required=name != "eval", help=out_help)
    _with_settings(p, "distribution.bin_width=0.5")
    p.set_defaults(func=func)
    if name == "eval":
        p.add_argument("--evals", help="comma-separated evaluators, e.g. distribution,generators")
        p.add_argument(
            "--profile",
            action="store_true",
            help="trace the whole evaluation (compilation included) with jax.profiler into <out>/profile/ "
            "(process 0's, in a multi-process run)",
        )
    if name in ("eval", "sample"):
        p.add_argument("--judge", help="judge folder (from `ae-jax judge`) to score decoded images")
    if name == "sample":
        p.add_argument("--sampler", help="one generator instead of generators.specs: grid, uniform, isotropic, ...")
        p.add_argument(
            "--param", action="append", default=[], metavar="KEY=VALUE", help="a --sampler parameter, e.g. bound=1.5"
        )


def _add_judge(sub) -> None:
    """`ae-jax judge`: a config and the output folder for the judge's checkpoint."""
    p = sub.add_parser("judge", help="train the in-project feature network used to score generated images")
    p.add_argument("--config", default="faces", help="preset name or JSON file: its data and judge sections")
    _with_settings(p, "judge.epochs=2")
    p.add_argument("--out", required=True, help="output folder for the judge's checkpoint")
    p.set_defaults(func=_judge)


def _add_study(sub) -> None:
    """`ae-jax study`: a study name (or all), smoke or --full size, the results folder."""
    p = sub.add_parser(
        "study",
        help="run a study (or all): its models, evaluators and results page",
        description="Without --full a study runs at smoke size on the embedded faces (seconds); with --full at the "
        "study's size (--set data.dir=/path/to/celeba for the CelebA studies). Finished stages are reused, so "
        "running a study again resumes it. Studies: see docs/studies.md.",
    )
    p.add_argument("name", help="a study (demo, random_points, ablations, ...) or all")
    p.add_argument("--full", action="store_true", help="the study's real size instead of the smoke size")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="replicates: every model trained with seeds S, S+1, ... (S: --set seed or 0); claims are decided "
        "across them",
    )
    _with_out(p)
    _with_settings(p, "train.epochs=2")
    p.set_defaults(func=_study)


def _add_demo(sub) -> None:
    """`ae-jax demo`: the demo study, --quick for the tiny preset."""
    p = sub.add_parser("demo", help="the demo study: embedded faces -> AE and tiny-KL VAE -> every evaluator -> page")
    p.add_argument("--quick", action="store_true", help="the tiny preset (seconds), as the tests run it")
    _with_out(p)
    _with_settings(p, "train.epochs=2")
    p.set_defaults(func=_demo)


def _version() -> str:
    """The installed package's version (its metadata), or a note that it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("ae-jax")
    except metadata.PackageNotFoundError:
        return "(not installed: no package metadata)"


def build_parser() -> argparse.ArgumentParser:
    """The `ae-jax` command line: one sub-command per stage (train, encode, evaluators, judge, study, demo)."""
    parser = argparse.ArgumentParser(prog="ae-jax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_encode(sub)
    for name, func, help_text in _EVALUATOR_COMMANDS:
        _add_evaluator_command(sub, name, func, help_text)
    _add_judge(sub)
    _add_study(sub)
    _add_demo(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ae_jax.runtime import configure_logging, enable_compilation_cache
    from ae_jax.sharding import DistributedError, initialize_distributed

    enable_compilation_cache()
    try:
        initialize_distributed()
    except DistributedError as e:
        print(f"ae-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    configure_logging()
    from ae_jax.config import ConfigError
    from ae_jax.data.datasets import DataError
    from ae_jax.sharding import is_main
    from ae_jax.train.runs import TrainingError

    try:  # results on stdout from process 0 alone, as the log (every process does the same work)
        with contextlib.nullcontext() if is_main() else contextlib.redirect_stdout(io.StringIO()):
            return args.func(args)
    except (ConfigError, DataError, TrainingError, FileNotFoundError, ValueError) as e:
        print(f"ae-jax {args.command}: error: {e}", file=sys.stderr)
        return _exit_status(e)


def _exit_status(error: Exception) -> int:
    """2 for bad input; 1 for a run that failed (non-finite loss); 128 + the signal for an interrupted study, as a
    shell reports a process that signal ended (`ae-jax train` returns the same for its runs: loop.exit_status)."""
    from ae_jax.train.runs import Interrupted, NonFiniteLoss

    if isinstance(error, Interrupted):
        return 128 + error.signal
    return 1 if isinstance(error, NonFiniteLoss) else 2


def entry() -> None:
    """The `ae-jax` console script: main() in a process with the tuned malloc (ae_jax.allocator)."""
    from ae_jax.allocator import restart_tuned

    restart_tuned("ae_jax.cli")
    sys.exit(main())


if __name__ == "__main__":
    entry()
