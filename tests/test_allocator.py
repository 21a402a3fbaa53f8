"""The tuned-malloc restart: which environments it changes, and that a restarted process really has the tunables."""

import os
import subprocess
import sys

import pytest

from ae_jax import allocator

TUNED = ":".join(allocator.TUNABLES)


def test_env_adds_the_tunables_and_keeps_others():
    env = allocator.tuned_env({"GLIBC_TUNABLES": "glibc.rtld.nns=8:glibc.malloc.arena_max=2", "X": "1"})
    assert env["GLIBC_TUNABLES"] == f"glibc.rtld.nns=8:{TUNED}" and env["X"] == "1"
    assert allocator.tuned_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=2"})["GLIBC_TUNABLES"] == TUNED


def test_env_off_removes_only_the_tunables():
    assert allocator.tuned_env({"GLIBC_TUNABLES": TUNED}, on=False) == {}
    assert allocator.tuned_env({"GLIBC_TUNABLES": f"a=1:{TUNED}"}, on=False) == {"GLIBC_TUNABLES": "a=1"}


def test_no_restart_when_set_or_switched_off():
    assert not allocator.needs_restart({"GLIBC_TUNABLES": TUNED})
    assert not allocator.needs_restart({"AE_JAX_MALLOC_TUNING": "0"})


@pytest.mark.skipif(not allocator.needs_restart({}), reason="no Linux glibc >= 2.35 here")
def test_restarted_process_runs_with_the_tunables(tmp_path):
    (tmp_path / "print_tunables.py").write_text("import os\nprint('child', os.environ.get('GLIBC_TUNABLES'))\n")
    code = (
        "import os, sys; from ae_jax.allocator import restart_tuned; "
        "print('parent', os.environ.get('GLIBC_TUNABLES')); restart_tuned('print_tunables')"
    )
    env = allocator.tuned_env(dict(os.environ), on=False)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["parent None", f"child {TUNED}"]


@pytest.mark.skipif(not allocator.needs_restart({}), reason="no Linux glibc >= 2.35 here")
def test_restarted_script_keeps_its_arguments(tmp_path):
    """Without a module, the script itself starts again, with its arguments and the tunables."""
    script = tmp_path / "script.py"
    script.write_text(
        "import os, sys; from ae_jax.allocator import restart_tuned; restart_tuned(); "
        "print(sys.argv[1:], os.environ.get('GLIBC_TUNABLES'))\n"
    )
    env = allocator.tuned_env(dict(os.environ), on=False)
    out = subprocess.run([sys.executable, str(script), "--x", "1"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [f"['--x', '1'] {TUNED}"]


@pytest.mark.skipif(not allocator.needs_restart({}), reason="no Linux glibc >= 2.35 here")
def test_tuned_process_does_not_fault_in_a_freed_block_again():
    """A 256 MB block allocated from a worker thread and freed comes back without page faults; with glibc's
    defaults it is mapped again each time (at least 128 faults even with numpy's 2 MiB pages)."""
    code = (
        "import resource, threading, numpy as np\n"
        "def touch():\n"
        "    np.ones(2**26, np.float32)\n"
        "def faults():\n"
        "    t = threading.Thread(target=touch); t.start(); t.join()\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "faults(); a = faults(); b = faults(); print(b - a)\n"
    )
    for on, check in ((True, lambda n: n < 16), (False, lambda n: n >= 128)):
        env = allocator.tuned_env(dict(os.environ), on=on)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert check(int(out.stdout)), (on, out.stdout)
