"""`ae-jax`: train, encode, analyze, sample, judge and demo from the command line."""

from __future__ import annotations

import argparse
import os
import sys


def _train(args) -> int:
    from ae_jax import config as config_lib
    from ae_jax.train import train

    config = config_lib.load(args.config, args.set)
    result = train(config, resume=args.resume)
    print(f"run folder: {config.run_dir}")
    return 0 if result["status"] == "complete" or result["status"].startswith("interrupted") else 1


def _encode(args) -> int:
    from ae_jax.encode import encode_run

    encode_run(args.run, args.split, args.out, args.batch_size)
    return 0


def _z_points(args):
    """The z-points an analysis works on: a .npy file, or the run's encoded training split (encoding it once)."""
    from ae_jax.analyze import load_z
    from ae_jax.encode import encode_run, z_path

    if args.z:
        return load_z(args.z)
    if not args.run:
        raise ValueError("give a run folder or --z FILE.npy")
    path = z_path(args.run)
    if not os.path.exists(path):
        encode_run(args.run, "train")
    return load_z(path)


def _analyze(args) -> int:
    from ae_jax.analyze import analyze

    summary = analyze(_z_points(args), args.out, tsne=not args.no_tsne, tsne_points=args.tsne_points)
    print(
        f"{len(summary['dominant_components'])} dominant components; radius peak {summary['radius']['peak']:.3f}; "
        f"figures and summary.json in {args.out}"
    )
    return 0


def _sample(args) -> int:
    from ae_jax.sample import run_sampling

    run_sampling(
        _z_points(args),
        args.out,
        sampler=args.sampler,
        params=args.param,
        n=args.n,
        seed=args.seed,
        run_dir=args.run,
        sweep=args.sweep,
        judge_dir=args.judge,
    )
    return 0


def _judge(args) -> int:
    from ae_jax import config as config_lib
    from ae_jax.judge import train_judge

    train_judge(config_lib.load(args.config, args.set), args.out, epochs=args.epochs)
    return 0


def _demo(args) -> int:
    from ae_jax.demo import run_demo

    page = run_demo(args.out, quick=args.quick)
    print(f"results page: {page}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ae-jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an AE or VAE from a preset or JSON config")
    p.add_argument("--config", default="faces", help="preset name or JSON file (may name a 'base' preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. model.z_dim=64")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.set_defaults(func=_train)

    p = sub.add_parser("encode", help="encode a split of a trained run into z-points (.npy)")
    p.add_argument("run", help="run folder (checkpoints/<name>)")
    p.add_argument("--split", default="train", help="train, valid, test or all")
    p.add_argument("--out", help="output .npy (default: <run>/z_<split>.npy)")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=_encode)

    for name, func, help_text in (
        ("analyze", _analyze, "measure the z-point distribution and draw the figures"),
        ("sample", _sample, "generate z-points, measure hits and radii, decode grids"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("run", nargs="?", help="run folder (its training split is encoded if needed)")
        p.add_argument("--z", help="z-points .npy instead of a run folder")
        p.add_argument("--out", required=True, help="output folder")
        p.set_defaults(func=func)
        if name == "analyze":
            p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE maps (the slow part)")
            p.add_argument("--tsne-points", type=int, default=20000)
        else:
            p.add_argument("--sampler", default="uniform", help="grid, uniform, isotropic, diagonal, full, mixture")
            p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="e.g. bound=1.5")
            p.add_argument("--n", type=int, default=10000)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--sweep", action="store_true", help="table over generators and parameters")
            p.add_argument("--judge", help="judge folder (from `ae-jax judge`) to score decoded images")

    p = sub.add_parser("judge", help="train the in-project feature network used to score generated images")
    p.add_argument("--config", default="faces")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="output folder for the judge's checkpoint")
    p.add_argument("--epochs", type=int, default=3)
    p.set_defaults(func=_judge)

    p = sub.add_parser("demo", help="embedded data -> AE and tiny-KL VAE -> analysis -> samplers -> HTML page")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds), as the tests run it")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ae_jax.runtime import enable_compilation_cache
    from ae_jax.sharding import initialize_distributed

    enable_compilation_cache()
    initialize_distributed()
    from ae_jax.config import ConfigError
    from ae_jax.data import DataError
    from ae_jax.train import TrainingError

    try:
        return args.func(args)
    except (ConfigError, DataError, TrainingError, FileNotFoundError, ValueError) as e:
        print(f"ae-jax {args.command}: error: {e}", file=sys.stderr)
        return 2


def entry() -> None:
    """The `ae-jax` console script: main() in a process that runs with huge pages (ae_jax.hugepages)."""
    from ae_jax.hugepages import restart_with_hugepages

    restart_with_hugepages("ae_jax.cli")
    sys.exit(main())


if __name__ == "__main__":
    entry()
