"""Warm-up for the throughput benchmarks: steps until the process's memory has stopped growing.

Compilation is not the only one-off cost. XLA:CPU allocates each step's temporaries afresh (one ~260 MB block for
case1), and when the next step's block is requested before the last one is freed, or small blocks land in the
freed one, the heap grows by another block, at random, a few times in the first ~100 steps. On the VMs of
benchmarks/README.md every fresh 2 MiB page then costs ~4 ms, so one growth adds ~0.6 s to whichever step meets
it: timed steps must come after the last growth, for every framework alike.
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Callable
from typing import Any

GROWTH_BYTES = 4 << 20  # peak-RSS rises smaller than this are Python's own bookkeeping, not the heap growing
QUIET_STEPS = 50  # steps without growth after which the heap is taken to have settled


def peak_rss_bytes() -> int:
    """The process's peak resident set (getrusage reports bytes on macOS, KiB elsewhere)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def add_warmup_argument(parser: argparse.ArgumentParser, default: int = 50) -> None:
    """The benchmarks' shared `--warmup` option: the least number of untimed steps before `warm_up` may stop."""
    parser.add_argument(
        "--warmup",
        type=int,
        default=default,
        help=f"untimed steps first (default {default}): at least this many, then, where the benchmark uses "
        "benchmarks/steady.py, more until the process's memory stops growing",
    )


def warm_up(
    step: Callable[[], Any],
    sync: Callable[[Any], Any],
    min_steps: int,
    quiet_steps: int = QUIET_STEPS,
    max_steps: int = 1000,
    check_every: int = 10,
) -> int:
    """Call `step` at least `min_steps` times, then until the peak resident set has not grown for `quiet_steps`
    (at most `max_steps`); `sync(step's output)` waits for the work queued. Returns the number of steps run."""
    steps, last_growth, peak = 0, 0, peak_rss_bytes()
    while steps < max_steps:
        for _ in range(check_every):
            out = step()
        sync(out)
        steps += check_every
        if (now := peak_rss_bytes()) > peak + GROWTH_BYTES:
            peak, last_growth = now, steps
        if steps >= min_steps and steps - last_growth >= quiet_steps:
            break
    return steps
