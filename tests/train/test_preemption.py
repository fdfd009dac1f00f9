"""Preemption, for real: the training command runs in a subprocess, gets SIGTERM at a random
step (it saves a checkpoint and exits with status 143), is restarted, gets SIGKILL at a
later random step (no warning at all), and is restarted again. Every step's loss and the
final weights equal an uninterrupted run's exactly.

A small demo model trains on the run's own synthetic corpus (text_ee only); the three
processes share a JAX compilation cache so only the first one compiles."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from rmpl_jax.train.checkpoint import read_params
from rmpl_jax.train.metrics_log import FIELDS, read_metrics
from rmpl_jax.train.preemption import EXIT_STATUS
from tests.testing.subproc import REPO, worker_env

STEPS = 8
OVERRIDES = {
    "stages": '("stage1",)',
    "stage1.tasks": '{"text_ee": 1.0}',
    "stage1.steps": str(STEPS),
    "checkpoint.every": "2",
    "checkpoint.keep": "3",
    "data.synthetic.train_docs": "6",
    "data.synthetic.heldout_docs": "1",
    "data.buckets": "(512,)",
    "data.batch_size": "2",
    "model.demo.text.hidden_size": "64",
    "model.demo.text.intermediate_size": "128",
    "model.demo.text.num_hidden_layers": "1",
    "model.demo.text.num_attention_heads": "2",
    "model.demo.text.num_key_value_heads": "1",
    "export": "False",
    "eval.heldout": "False",
}
TIMEOUT = 300


def _command(workdir):
    flags = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    return [sys.executable, "-m", "rmpl_jax.main", "--config", "configs/stage1.py", "--workdir", str(workdir), *flags]


def _env(cache):
    env = worker_env(1)
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    return env


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def _interrupt(workdir, env, sig, after_step, seen_lines):
    """Starts the command, sends `sig` once metrics.jsonl has a new line for `after_step`;
    returns (exit status, output, the last step logged)."""
    metrics = workdir / "stage1" / "metrics.jsonl"
    proc = subprocess.Popen(
        _command(workdir), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        new = [json.loads(line)["step"] for line in _lines(metrics)[seen_lines:]]
        if after_step in new:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, json.loads(_lines(metrics)[-1])["step"]


def _values(line: dict) -> dict:
    """A metrics line without its timings (tokens_per_s, wall_time), which no rerun repeats."""
    return {k: v for k, v in line.items() if k in ("step", *FIELDS)}


def test_sigterm_and_sigkill_resume_exactly(tmp_path):
    env = _env(tmp_path / "jax_cache")
    reference = tmp_path / "reference"
    done = subprocess.run(_command(reference), cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    expected = {line["step"]: _values(line) for line in read_metrics(str(reference / "stage1"))}
    assert sorted(expected) == list(range(1, STEPS + 1))

    rng = random.Random(int.from_bytes(os.urandom(4)))
    workdir = tmp_path / "preempted"
    # Lines are written one step late (reads lag a step), so the stop lands up to two steps
    # after the line the signal follows; leave room for the SIGKILL step after it.
    term_at = rng.randint(1, STEPS - 4)
    status, out, stopped = _interrupt(workdir, env, signal.SIGTERM, term_at, 0)
    where = f"SIGTERM after step {term_at}"
    assert status == EXIT_STATUS and f"stopped by SIGTERM at step {stopped}" in out, (where, out[-3000:])
    assert "Traceback" not in out and stopped < STEPS
    assert os.path.isdir(workdir / "stage1" / "checkpoints" / str(stopped)), where  # saved although every=2

    kill_at = rng.randint(stopped + 1, STEPS - 1)
    seen = len(_lines(workdir / "stage1" / "metrics.jsonl"))
    status, out, killed = _interrupt(workdir, env, signal.SIGKILL, kill_at, seen)
    where += f", SIGKILL after step {kill_at} (at {killed})"
    assert status == -signal.SIGKILL and f"resumed stage1 from step {stopped}" in out, (where, out[-3000:])

    done = subprocess.run(_command(workdir), cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, (where, done.stdout[-3000:] + done.stderr[-3000:])
    assert "resumed stage1 from step" in done.stdout, where

    # Every logged line, redone steps included, equals the uninterrupted run's (timings aside).
    for line in _lines(workdir / "stage1" / "metrics.jsonl"):
        record = json.loads(line)
        assert _values(record) == expected[record["step"]], (where, record)
    assert [line["step"] for line in read_metrics(str(workdir / "stage1"))] == list(range(1, STEPS + 1))
    _, final = read_params(str(workdir / "stage1" / "checkpoints"), STEPS)
    _, uninterrupted = read_params(str(reference / "stage1" / "checkpoints"), STEPS)
    assert final.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        np.testing.assert_array_equal(np.asarray(final[name]), np.asarray(value), err_msg=f"{name} ({where})")
