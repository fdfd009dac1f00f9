"""Preemption: SIGTERM (what TPU VMs, SLURM and Kubernetes send before they evict a job)
ends training at the next step boundary with a checkpoint, instead of mid-step.

Single process: a SIGTERM handler sets a flag the loop reads after each step. Several
processes: JAX's preemption service (on by default after `jax.distributed.initialize`)
catches the signal and agrees on one step at which every process stops, so the collective
save happens on all of them at the same step.
"""

from __future__ import annotations

import signal
import threading

import jax
from jax.experimental import multihost_utils

from rmpl_jax.io.errors import UserError

EXIT_STATUS = 128 + signal.SIGTERM  # what a shell reports for a job ended by SIGTERM


class Preempted(UserError):
    """Training stopped on SIGTERM after saving a checkpoint; rerunning the command resumes."""


class PreemptionWatch:
    """Context manager; `reached(step)` says whether to save and stop after `step`."""

    def __init__(self):
        self._signalled = False
        self._previous = None

    def __enter__(self) -> PreemptionWatch:
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._note)
        return self

    def _note(self, signum, frame) -> None:
        self._signalled = True

    def reached(self, step: int) -> bool:
        """True once a SIGTERM arrived (every process: at the step they agreed on)."""
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._signalled

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
