"""Start CPU runs with glibc's malloc on transparent huge pages.

XLA:CPU allocates a train step's temporaries afresh on every call (~290 MB for case1) and the kernel maps
them 4 KiB page by page on first touch: ~70,000 page faults per step. With GLIBC_TUNABLES
glibc.malloc.hugetlb=1 (glibc >= 2.35, THP in `madvise` or `always` mode) malloc asks for 2 MiB pages and
case1 trains 1.3x faster on a 2-core CPU (benchmarks/README.md). glibc reads tunables only when a process
starts, so the command-line entry points restart themselves once with it set (AE_JAX_HUGEPAGES=0: don't).
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"


def hugepage_env(env: dict[str, str], on: bool = True) -> dict[str, str]:
    """A copy of env whose GLIBC_TUNABLES asks malloc for huge pages, or (on=False) not; other tunables kept."""
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.hugetlb=")]
    tunables += [TUNABLE] if on else []
    out = {k: v for k, v in env.items() if k != "GLIBC_TUNABLES"}
    return {**out, "GLIBC_TUNABLES": ":".join(tunables)} if tunables else out


def _glibc_supports_hugetlb() -> bool:
    """glibc >= 2.35, the first with the glibc.malloc.hugetlb tunable (False on other C libraries)."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split(" ", 1)
        return name == "glibc" and tuple(int(p) for p in version.split(".")[:2]) >= (2, 35)
    except (AttributeError, ValueError, OSError):  # no confstr, an unknown name, or no glibc version string
        return False


def _thp_usable(mode_file: str = THP_MODE_FILE) -> bool:
    try:
        with open(mode_file) as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def needs_restart(env: dict[str, str]) -> bool:
    """True when this process would gain huge pages by restarting: Linux glibc >= 2.35 with THP available,
    the tunable not already set, and AE_JAX_HUGEPAGES not 0."""
    return (
        env.get("AE_JAX_HUGEPAGES", "1") != "0"
        and TUNABLE not in env.get("GLIBC_TUNABLES", "").split(":")
        and sys.platform.startswith("linux")
        and _glibc_supports_hugetlb()
        and _thp_usable()
    )


def restart_with_hugepages(module: str) -> None:
    """Replace this process by `python -m module <same arguments>` with huge pages on (returns if not needed).
    Call it first thing in a command-line entry point, before JAX allocates anything."""
    if needs_restart(dict(os.environ)):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], hugepage_env(dict(os.environ)))
