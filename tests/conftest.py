"""Shared test settings: a private data cache and one persistent compilation cache per test session.

Many tests compile the same programs (same model, same shapes); the persistent cache lets later tests,
and the CLI subprocesses some tests start, load them instead of compiling again.
"""

import logging
import os

import pytest

from ae_jax.runtime import enable_compilation_cache


@pytest.fixture(autouse=True, scope="session")
def _private_caches(tmp_path_factory):
    os.environ["AE_JAX_CACHE"] = str(tmp_path_factory.mktemp("ae_jax_cache"))
    os.environ["AE_JAX_JIT_CACHE"] = str(tmp_path_factory.mktemp("jit_cache"))
    enable_compilation_cache()


class _ListHandler(logging.Handler):
    """Keeps each record's message in a list."""

    def __init__(self, messages: list[str]):
        super().__init__(logging.INFO)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def log_messages():
    """The messages the `ae_jax` loggers emit during the test, as a list (clear it to keep only later ones)."""
    logger = logging.getLogger("ae_jax")
    messages: list[str] = []
    handler, level = _ListHandler(messages), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)
