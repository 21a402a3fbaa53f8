"""Shared test settings: a private data cache and one persistent compilation cache per test session.

Many tests compile the same programs (same model, same shapes); the persistent cache lets later tests,
and the CLI subprocesses some tests start, load them instead of compiling again.
"""

import os

import pytest

from ae_jax.runtime import enable_compilation_cache


@pytest.fixture(autouse=True, scope="session")
def _private_caches(tmp_path_factory):
    os.environ["AE_JAX_CACHE"] = str(tmp_path_factory.mktemp("ae_jax_cache"))
    os.environ["AE_JAX_JIT_CACHE"] = str(tmp_path_factory.mktemp("jit_cache"))
    enable_compilation_cache()
