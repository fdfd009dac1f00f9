"""Progress bars that stay readable in log files.

On a terminal the bar is tqdm's. Anywhere else (a log file, a pipe, a job scheduler's
output) a redrawn bar becomes one line per update, so `progress` prints a plain line at
most every `interval` seconds instead, and one when it closes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 10.0


class LogProgress:
    """The part of tqdm's interface the runs use (`update`, `set_postfix`, `total`,
    `refresh`, `close`, context manager), written as throttled plain lines."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        *,
        initial: int = 0,
        stream: TextIO,
        interval: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = initial
        self._stream, self._interval, self._clock = stream, interval, clock
        self._start_n = initial
        self._start = self._last = clock()
        self._postfix = ""
        self._closed = False
        self._written_n: int | None = None

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._clock() - self._last >= self._interval:
            self._write()

    def set_postfix(self, **values) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def refresh(self) -> None:
        """tqdm redraws here; a log line waits for the next interval."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._written_n != self.n:
                self._write()

    def _write(self) -> None:
        now = self._clock()
        self._last, self._written_n = now, self.n
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        rate = (self.n - self._start_n) / (now - self._start) if now > self._start else 0.0
        line = f"{self.desc}: {done} {self.unit}s ({rate:.2f} {self.unit}/s)"
        print(line + (f" {self._postfix}" if self._postfix else ""), file=self._stream, flush=True)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(
    total: int | None, desc: str, unit: str, *, initial: int = 0, disable: bool = False, stream: TextIO | None = None
):
    """A tqdm bar on a terminal, else a `LogProgress` (a line every LOG_INTERVAL_S seconds).
    Writes to stderr (tqdm's default) unless `stream` is given."""
    stream = stream or sys.stderr
    if disable or stream.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=stream)
    return LogProgress(total, desc, unit, initial=initial, stream=stream)
