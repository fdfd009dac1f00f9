"""The host side of a step's metrics, read without waiting on the device every step.

The jitted step returns its metrics as device scalars; reading one (`float(...)`) blocks
until that step has run, so the host could not dispatch the next step while the device
works. Here each step's metrics stay on the device until a read is due — a logged step, a
checkpoint (the guard must see a step before it is saved) or the end of the loop — and all
pending steps come back in one transfer. Between reads the host only dispatches.

    metrics = StepMetrics(guard, log)
    metrics.add(step, device_metrics)
    if metrics.due(step) or saving:
        for step, values in metrics.read(last_checkpoint): ...

`read` runs the non-finite guard on every pending step in order (`numeric_guard.py`), so a
NaN step still stops training before any later checkpoint; the weights it left unchanged
are what later steps trained from.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax

from rmpl_jax.train.metrics_log import MetricsLog
from rmpl_jax.train.numeric_guard import NumericGuard


class StepMetrics:
    """Device metrics of steps not read yet; `read` fetches them all at once."""

    def __init__(self, guard: NumericGuard, log: MetricsLog):
        self.guard, self.log = guard, log
        self._pending: list[tuple[int, Mapping[str, jax.Array]]] = []

    def add(self, step: int, metrics: Mapping[str, jax.Array]) -> None:
        """Keeps step `step`'s metrics (device arrays) for the next read."""
        self._pending.append((int(step), metrics))

    def due(self, step: int) -> bool:
        """Whether step `step` is one the metrics log writes."""
        return self.log.due(step)

    @property
    def pending(self) -> list[int]:
        """Steps whose metrics have not been read."""
        return [step for step, _ in self._pending]

    def read(self, last_checkpoint: int | None, *, through: int | None = None) -> list[tuple[int, dict[str, float]]]:
        """Host values of the pending steps up to `through` (all when None), oldest first:
        each is checked by the guard (raises NonFiniteLoss) and written to the log when due."""
        take = [(s, m) for s, m in self._pending if through is None or s <= through]
        if not take:
            return []
        self._pending = self._pending[len(take) :]
        values = jax.device_get([m for _, m in take])  # one wait for all of them
        out = []
        try:
            for (step, _), host in zip(take, values):
                host = {k: float(v) for k, v in host.items()}
                self.guard.check(step, host, last_checkpoint)
                out.append((step, host))
        finally:  # the steps before a non-finite one are logged too
            self.log.write_steps(out)
        return out
