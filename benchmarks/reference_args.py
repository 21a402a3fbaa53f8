"""The command line shared by the PyTorch and Keras reference benchmarks."""

from __future__ import annotations

import argparse

import steady  # benchmarks/ is on sys.path when run as a script


def reference_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default="case1", help="ae_jax preset or JSON config")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    steady.add_warmup_argument(p, default=3)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    return p
