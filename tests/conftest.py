"""Shared test settings: a private data cache per session, small deterministic runs."""
import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    os.environ["AE_JAX_CACHE"] = str(tmp_path_factory.mktemp("ae_jax_cache"))
    os.environ["AE_JAX_JIT_CACHE"] = str(tmp_path_factory.mktemp("jit_cache"))
