"""Start CPU runs with glibc's malloc tuned for XLA:CPU: huge pages, and freed memory kept for the next step.

XLA:CPU allocates a train step's temporaries afresh on every call (one ~270 MB block for case1, from a worker
thread). By default glibc serves a block that large with mmap and returns it with munmap, so the kernel maps
and zeroes it again on every step (~70,000 4 KiB page faults; 6% of the CPU time with 2 MiB pages). The
tunables here make malloc ask for 2 MiB pages (`hugetlb=1`, glibc >= 2.35, THP in `madvise` or `always`
mode), serve every thread from the main heap (`arena_max=1`: other arenas fall back to mmap for large
blocks), never use mmap (`mmap_max=0`) and never give memory back (`trim_threshold`), so the next step reuses
the same pages: no faults after the first step. The price is that a process keeps its peak memory.
glibc reads tunables only when a process starts, so the command-line entry points restart themselves once
with them set (AE_JAX_MALLOC_TUNING=0: don't). Figures: benchmarks/README.md.
"""

from __future__ import annotations

import os
import sys

TUNABLES = (
    "glibc.malloc.hugetlb=1",
    "glibc.malloc.arena_max=1",
    "glibc.malloc.mmap_max=0",
    f"glibc.malloc.trim_threshold={2**40}",
)
_NAMES = tuple(t.split("=")[0] for t in TUNABLES)


def tuned_env(env: dict[str, str], on: bool = True) -> dict[str, str]:
    """A copy of env whose GLIBC_TUNABLES has this module's malloc settings, or (on=False) none of them;
    other tunables kept."""
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and t.split("=")[0] not in _NAMES]
    tunables += list(TUNABLES) if on else []
    out = {k: v for k, v in env.items() if k != "GLIBC_TUNABLES"}
    return {**out, "GLIBC_TUNABLES": ":".join(tunables)} if tunables else out


def _glibc_supports_tunables() -> bool:
    """glibc >= 2.35, the first with the glibc.malloc.hugetlb tunable (False on other C libraries)."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split(" ", 1)
        return name == "glibc" and tuple(int(p) for p in version.split(".")[:2]) >= (2, 35)
    except (AttributeError, ValueError, OSError):  # no confstr, an unknown name, or no glibc version string
        return False


def needs_restart(env: dict[str, str]) -> bool:
    """True when this process would gain the tuned malloc by restarting: Linux glibc >= 2.35, the tunables
    not all set already, and AE_JAX_MALLOC_TUNING not 0."""
    return (
        env.get("AE_JAX_MALLOC_TUNING", "1") != "0"
        and not set(TUNABLES) <= set(env.get("GLIBC_TUNABLES", "").split(":"))
        and sys.platform.startswith("linux")
        and _glibc_supports_tunables()
    )


def restart_tuned(module: str | None = None) -> None:
    """Replace this process by `python -m module <same arguments>` (module None: the same script) with the tuned
    malloc (returns if not needed). Call it first thing in an entry point, before JAX allocates anything."""
    if needs_restart(dict(os.environ)):
        sys.stdout.flush()
        program = ["-m", module] if module else [sys.argv[0]]
        os.execve(sys.executable, [sys.executable, *program, *sys.argv[1:]], tuned_env(dict(os.environ)))
