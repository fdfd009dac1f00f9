"""Runs a test worker script in a fresh Python with N host CPU devices (the test process
may already have initialised JAX with one)."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

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


NPROC = 2
WORKERS_TIMEOUT_S = 420


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(script: str, workdir, extra_env=None, per_process_env=()) -> list[str]:
    """Runs NPROC copies of tests/train/<script> (one CPU device each); `per_process_env`
    names variables set to each process's index. Returns their stdouts."""
    port = free_port()
    env = dict(worker_env(1), **(extra_env or {}))
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "train" / script), str(i), str(NPROC), str(port), str(workdir)],
            cwd=REPO,
            env=dict(env, **{var: str(i) for var in per_process_env}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(NPROC)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=WORKERS_TIMEOUT_S))
    except subprocess.TimeoutExpired:
        pytest.fail(f"workers did not finish in {WORKERS_TIMEOUT_S}s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, (_, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i} failed (rc={p.returncode}):\n{err[-4000:]}"
    return [out for out, _ in outs]
