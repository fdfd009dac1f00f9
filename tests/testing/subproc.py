"""Runs a test worker script in a fresh Python with N host CPU devices (the test process
may already have initialised JAX with one)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def worker_env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_json(script: str, devices: int, timeout: float, args=()) -> dict:
    """Runs tests/train/<script> and returns the JSON object on its last stdout line."""
    path = REPO / "tests" / "train" / script
    proc = subprocess.run(
        [sys.executable, str(path), *map(str, args)],
        cwd=REPO,
        env=worker_env(devices),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"{script} printed nothing; stderr:\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])
