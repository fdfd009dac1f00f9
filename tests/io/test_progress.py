"""Progress in log files: a line at most every interval, and one at the end."""

import io

from rmpl_jax.io.progress import LOG_INTERVAL_S, LogProgress, progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_log_progress_is_throttled():
    out, clock = io.StringIO(), Clock()
    with LogProgress(410, "stage1", "step", stream=out, clock=clock) as bar:
        for _ in range(410):  # 410 steps of 1/8 s: 51.25 s
            clock.now += 0.125
            bar.update(1)
            bar.set_postfix(loss="1.000")
    lines = out.getvalue().splitlines()
    assert len(lines) == 50 / LOG_INTERVAL_S + 1  # one per interval, plus the closing line
    assert lines[0] == "stage1: 80/410 steps (8.00 step/s) loss=1.000"
    assert lines[-1] == "stage1: 410/410 steps (8.00 step/s) loss=1.000"


def test_progress_picks_a_log_line_writer_off_terminal():
    assert isinstance(progress(10, "x", "item", stream=io.StringIO()), LogProgress)
