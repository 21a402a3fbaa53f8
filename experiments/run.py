"""Run the study's experiments: `python -m experiments.run <study|all> [--full] [--out DIR] [--set key=value]`.

Without --full a study runs at smoke size on the embedded faces (seconds); with --full at the study's
size (pass --set data.dir=/path/to/celeba for the CelebA studies). Finished trainings are reused, so
running a study again resumes it.
"""

from __future__ import annotations

import argparse
import sys

if __name__ == "__main__":  # first, before importing JAX: the restart replaces this process
    from ae_jax.allocator import restart_tuned

    restart_tuned("experiments.run")

from ae_jax.studies.catalogue import STUDIES, run_study  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=[*STUDIES, "all"])
    parser.add_argument("--full", action="store_true", help="the study's real size instead of the smoke size")
    parser.add_argument("--out", default="results/experiments")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every model of the study, e.g. data.dir=../shared/data/celeba",
    )
    args = parser.parse_args(argv)
    from ae_jax.runtime import enable_compilation_cache

    enable_compilation_cache()
    for name in STUDIES if args.study == "all" else [args.study]:
        print(f"{name}: {run_study(name, args.full, args.out, args.set)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
