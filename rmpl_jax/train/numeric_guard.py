"""The host side of the step's non-finite check.

The jitted step leaves trainables and optimizer state unchanged when the loss or a gradient
is NaN/Inf and reports `nonfinite` in its metrics (`train/step.py`), so nothing breaks
whether the host reads metrics every step or only now and then. The host notes each
step's example names when it submits the batch and calls `check` whenever it reads a
step's metrics, before that step is checkpointed: a non-finite step stops training with a
one-line error naming the step, its examples and the last good checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rmpl_jax.io.errors import UserError

NAMES_SHOWN = 8  # example names in the message; the count says how many there were


class NonFiniteLoss(UserError):
    """Training met a NaN or Inf loss or gradient."""


class NumericGuard:
    """Remembers each unread step's example names; `check` raises NonFiniteLoss."""

    def __init__(self, stage: str, checkpoint_dir: str):
        self.stage, self.checkpoint_dir = stage, checkpoint_dir
        self._names: dict[int, Sequence[str]] = {}

    def note_batch(self, step: int, example_names: Sequence[str]) -> None:
        """The examples that step `step` (the update that makes the state's step `step`) trains on."""
        self._names[step] = example_names

    def check(self, step: int, metrics: Mapping[str, float], last_checkpoint: int | None) -> None:
        """Raises NonFiniteLoss when step `step`'s host metrics report a non-finite value."""
        names = self._names.pop(step, ())
        if not metrics.get("nonfinite") and math.isfinite(metrics["loss"]):
            return
        shown = ", ".join(names[:NAMES_SHOWN]) + (
            f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        )
        kept = (
            f"the last good checkpoint is step {last_checkpoint} in {self.checkpoint_dir}"
            if last_checkpoint is not None
            else "no checkpoint was written yet"
        )
        raise NonFiniteLoss(
            f"{self.stage} step {step}: loss {metrics['loss']}, gradient norm {metrics.get('grad_norm')} "
            f"on the batch of {len(names)} examples [{shown}]; the step left the weights unchanged and "
            f"training stopped; {kept}. Lower the learning rate or check those examples, then rerun"
        )
