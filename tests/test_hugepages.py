"""The huge-page restart: which environments it changes, and that a restarted process really has the tunable."""

import os
import subprocess
import sys

import pytest

from ae_jax import hugepages


def test_env_adds_the_tunable_and_keeps_others():
    env = hugepages.hugepage_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"})
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{hugepages.TUNABLE}" and env["X"] == "1"
    assert hugepages.hugepage_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=2"})["GLIBC_TUNABLES"] == hugepages.TUNABLE


def test_env_off_removes_only_the_tunable():
    assert hugepages.hugepage_env({"GLIBC_TUNABLES": hugepages.TUNABLE}, on=False) == {}
    env = hugepages.hugepage_env({"GLIBC_TUNABLES": f"a=1:{hugepages.TUNABLE}"}, on=False)
    assert env == {"GLIBC_TUNABLES": "a=1"}


def test_no_restart_when_set_or_switched_off():
    assert not hugepages.needs_restart({"GLIBC_TUNABLES": hugepages.TUNABLE})
    assert not hugepages.needs_restart({"AE_JAX_HUGEPAGES": "0"})


@pytest.mark.skipif(not hugepages.needs_restart({}), reason="no glibc >= 2.35 with transparent huge pages here")
def test_restarted_process_runs_with_the_tunable(tmp_path):
    (tmp_path / "print_tunables.py").write_text("import os\nprint('child', os.environ.get('GLIBC_TUNABLES'))\n")
    code = (
        "import os, sys; from ae_jax.hugepages import restart_with_hugepages; "
        "print('parent', os.environ.get('GLIBC_TUNABLES')); restart_with_hugepages('print_tunables')"
    )
    env = hugepages.hugepage_env(dict(os.environ), on=False)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["parent None", f"child {hugepages.TUNABLE}"]
