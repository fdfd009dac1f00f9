"""`W/<stage>/metrics.jsonl`: one JSON line per step the host read metrics for.

A resumed run appends to the same file, so steps redone after a kill appear twice;
`read_metrics` keeps the last line of each step, which is what the finished run did.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from rmpl_jax.io.lines import numbered_lines

FILE_NAME = "metrics.jsonl"


class MetricsLog:
    """Appends `{"step": k, name: value, ...}` lines, flushed at once (a killed run keeps them)."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        self._file.write(json.dumps({"step": int(step), **{k: float(v) for k, v in metrics.items()}}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str) -> dict[int, dict]:
    """{step: its last logged metrics}, in step order."""
    by_step = {}
    for _, line in numbered_lines(path):
        record = json.loads(line)
        by_step[int(record["step"])] = record
    return dict(sorted(by_step.items()))
