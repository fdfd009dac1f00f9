"""Training metrics of one stage, every `every` steps: `<stage dir>/metrics.jsonl` (one JSON
line per logged step) and TensorBoard event files in the same folder (tensorboardX), so
`tensorboard --logdir W` shows each stage as a run.

    log = MetricsLog(os.path.join(workdir, "stage1"), every=config.train.log_every)
    for ...:
        state, metrics = step(state, batch)
        log.write(int(state.step), metrics)   # reads the metrics only on logged steps
    log.close()

A line holds step, loss, learning_rate, grad_norm, tokens (answer tokens of the step's global
batch), input_tokens (all its rows' tokens, padding not counted), examples, and over the
interval since the previous line: padded_tokens (the rows' padding), padding_share (padding
over all token slots), tokens_per_s, input_tokens_per_s and examples_per_s (the interval's
sums over its wall time), and wall_time (seconds since the log was opened).

Wall time is stamped when metrics reach the host. Steps read in one transfer (after a
checkpoint, say) share the time since the previous read evenly, so rates have no spikes and
an interval's seconds add up to the run's.
A resumed stage appends; a step logged twice (rerun after the last checkpoint) keeps both
lines, and readers take the last.

A remote stage folder (`gs://...`; objects there cannot be appended to) is mirrored: the
log writes in a local temporary folder and uploads its files every SYNC_SECONDS, on `sync`
(the train loop calls it after each checkpoint) and on `close`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping

from tensorboardX import SummaryWriter

from rmpl_jax.io import paths
from rmpl_jax.io.lines import numbered_lines

METRICS_FILE = "metrics.jsonl"
FIELDS = ("loss", "learning_rate", "grad_norm", "tokens", "input_tokens", "examples")
COUNTS = ("tokens", "input_tokens", "batch_tokens", "examples")  # summed over an interval
SYNC_SECONDS = 60.0  # a remote stage folder gets the logged lines at least this often


class MetricsLog:
    """Writes a stage's metrics; `enabled=False` (a process other than 0) writes nothing."""

    def __init__(self, stage_dir: str, every: int = 1, enabled: bool = True):
        if every < 1:
            raise ValueError(f"train.log_every must be >= 1, got {every}")
        self.every = int(every)
        self.path = os.path.join(stage_dir, METRICS_FILE)
        self._file = self._writer = None
        self._remote = stage_dir if paths.is_remote(stage_dir) else None
        self._local = stage_dir
        if enabled:
            if self._remote:
                self._local = tempfile.mkdtemp(prefix="rmpl_metrics_")
                if paths.exists(self.path):  # a resumed stage appends to what is there
                    paths.copy_file(self.path, os.path.join(self._local, METRICS_FILE))
            os.makedirs(self._local, exist_ok=True)
            local_file = os.path.join(self._local, METRICS_FILE)
            self._file = open(local_file, "a", encoding="utf-8")  # noqa: SIM115 -- closed by close()
            self._writer = SummaryWriter(logdir=self._local)
        self._opened = self._last_time = self._clock = self._synced = time.perf_counter()
        self._sums = dict.fromkeys(COUNTS, 0.0)

    def due(self, step: int) -> bool:
        """Whether `step` is one this log writes."""
        return step % self.every == 0

    def write(self, step: int, metrics: Mapping[str, object]) -> dict | None:
        """Adds one step's metrics (device or host scalars) to the interval; logs the line
        when `step` is due and returns it."""
        lines = self.write_steps([(step, metrics)])
        return lines[0] if lines else None

    def write_steps(self, steps: list[tuple[int, Mapping[str, object]]]) -> list[dict]:
        """Adds consecutive steps read in one transfer (they share the time since the last
        read evenly); returns the lines written for the due ones."""
        if self._file is None or not steps:
            return []
        now = time.perf_counter()
        share = (now - self._clock) / len(steps)
        lines = []
        for i, (step, metrics) in enumerate(steps):
            for key in COUNTS:
                if key in metrics:
                    self._sums[key] += float(metrics[key])
            if self.due(step):
                lines.append(self._line(step, metrics, self._clock + share * (i + 1)))
        self._clock = now
        if self._remote and now - self._synced >= SYNC_SECONDS:
            self.sync()
        return lines

    def _line(self, step: int, metrics: Mapping[str, object], now: float) -> dict:
        values = {k: float(metrics[k]) for k in FIELDS if k in metrics}
        seconds = now - self._last_time
        line = {"step": int(step), **values}
        sums = self._sums
        if sums["batch_tokens"] > 0:
            line["padded_tokens"] = sums["batch_tokens"] - sums["input_tokens"]
            line["padding_share"] = line["padded_tokens"] / sums["batch_tokens"]
        for key in ("tokens", "input_tokens", "examples"):
            if key in metrics and seconds > 0:
                line[f"{key}_per_s"] = sums[key] / seconds
        line["wall_time"] = now - self._opened
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        for key, value in line.items():
            if key not in ("step", "wall_time"):
                self._writer.add_scalar(f"train/{key}", value, global_step=int(step))
        self._last_time = now
        self._sums = dict.fromkeys(COUNTS, 0.0)
        return line

    def sync(self) -> None:
        """Uploads the mirrored files to a remote stage folder (a no-op for a local one)."""
        if not self._remote or self._file is None:
            return
        self._writer.flush()
        self._upload()

    def _upload(self) -> None:
        for name in os.listdir(self._local):
            paths.copy_file(os.path.join(self._local, name), os.path.join(self._remote, name))
        self._synced = time.perf_counter()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._writer.close()
            if self._remote:
                self._upload()
                shutil.rmtree(self._local, ignore_errors=True)
            self._file = self._writer = None


def read_metrics(stage_dir: str) -> list[dict]:
    """The stage's logged lines by step; of a step logged twice, the last line. A line that is
    not JSON (a run killed while writing) raises ValueError naming the file and line."""
    path = os.path.join(stage_dir, METRICS_FILE)
    if not paths.exists(path):
        return []
    by_step = {}
    for lineno, raw in numbered_lines(path):
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: invalid JSON: {e.msg}") from None
        if not isinstance(line, dict) or not isinstance(line.get("step"), int):
            raise ValueError(f"{path}:{lineno}: expected an object with an integer 'step'")
        by_step[line["step"]] = line
    return [by_step[k] for k in sorted(by_step)]
