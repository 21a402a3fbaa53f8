"""Atomic, resumable checkpoints with orbax: keep the last K, fall back past a corrupt latest one."""

from __future__ import annotations

import logging
import os
from typing import Any

import orbax.checkpoint as ocp

logger = logging.getLogger(__name__)


class CheckpointStore:
    """Saves pytrees under `<directory>/<step>` (orbax writes to a temporary folder, then renames). In a
    multi-process job every process calls the same methods; orbax coordinates the writes."""

    def __init__(self, directory: str, keep: int = 3):
        self.manager = ocp.CheckpointManager(
            os.path.abspath(directory), options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )
        self._saved = set(self.manager.all_steps())  # read once, so every process decides alike

    def save(self, step: int, state: Any) -> None:
        if step not in self._saved:
            self.manager.save(step, args=ocp.args.StandardSave(state))
            self._saved.add(step)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, step: int, abstract_state: Any) -> Any | None:
        """The state saved at `step`, or None (reported) when that checkpoint is unreadable."""
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
        except Exception as e:  # orbax raises many types for a damaged folder
            logger.warning(
                f"checkpoint at step {step} in {self.manager.directory} is unreadable "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); trying the previous one"
            )
            return None

    def restore_latest(self, abstract_state: Any) -> tuple[Any, int] | None:
        """Restore the newest readable checkpoint; a corrupt one is reported and the previous one used."""
        for step in reversed(self.steps()):
            if (state := self.restore(step, abstract_state)) is not None:
                return state, step
        return None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
