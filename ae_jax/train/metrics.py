"""A run's metrics, written where researchers look for them: per-epoch lines in metrics.jsonl (the file every
tool here reads), per-step scalars in steps.jsonl, and both plus the reconstruction grids as TensorBoard event
files under <run>/tensorboard (`tensorboard --logdir checkpoints`), through tensorboardX: no TensorFlow.

A run that starts from a checkpoint drops the records written after it (a killed run may have written them
before the checkpoint that would have followed) and writes them again, so every step and epoch is recorded
once."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from PIL import Image

from ae_jax import stages


def _step_of(line: str) -> int | None:
    """The step of a jsonl record, or None for a line cut short by a kill."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return None


def keep_records_until(path: str, step: int) -> None:
    """Rewrite a jsonl file of records keeping those up to `step` (none when step is 0)."""
    if not os.path.isfile(path):
        return
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    kept = [line for line in lines if (s := _step_of(line)) is not None and s <= step]
    if kept != lines:
        stages.write_atomically(path, lambda f: f.write("".join(line + "\n" for line in kept)), mode="w")


class MetricWriter:
    """Writes in the main process only (`active`); elsewhere every method does nothing. `start_step`: the step
    the run starts from; records of later steps are dropped (TensorBoard's are purged)."""

    def __init__(self, run_dir: str, active: bool = True, start_step: int = 0):
        from tensorboardX import SummaryWriter

        self.run_dir, self.active = run_dir, active
        if not active:
            self._board = None
            return
        for name in ("metrics.jsonl", "steps.jsonl"):
            keep_records_until(os.path.join(run_dir, name), start_step)
        self._board = SummaryWriter(os.path.join(run_dir, "tensorboard"), purge_step=start_step + 1)

    def _append(self, name: str, line: dict) -> None:
        with open(os.path.join(self.run_dir, name), "a") as f:
            f.write(json.dumps(line) + "\n")

    def _scalars(self, prefix: str, values: dict, step: int) -> None:
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self._board.add_scalar(f"{prefix}/{key}", value, step)

    def steps(self, first_step: int, window: list[dict]) -> None:
        """Per-step metrics (host values) of consecutive steps from first_step on."""
        if not self.active:
            return
        for i, metrics in enumerate(window):
            line = {"step": first_step + i, **{k: float(v) for k, v in metrics.items()}}
            self._append("steps.jsonl", line)
            self._scalars("train", {k: v for k, v in line.items() if k != "step"}, line["step"])

    def epoch(self, metrics: dict) -> None:
        """The epoch's line of metrics.jsonl, its scalars, and its reconstruction grid as an image."""
        if not self.active:
            return
        self._append("metrics.jsonl", metrics)
        self._scalars("epoch", {k: v for k, v in metrics.items() if k not in ("epoch", "step")}, metrics["step"])
        with Image.open(metrics["reconstruction_grid"]) as image:
            self._board.add_image(
                "reconstructions", np.asarray(image.convert("RGB")), metrics["step"], dataformats="HWC"
            )
        self._board.flush()

    def close(self) -> None:
        if self.active:
            self._board.close()
