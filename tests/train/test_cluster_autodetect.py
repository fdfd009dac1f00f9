"""Cluster auto-detection: two local processes in a simulated SLURM job step (the variables
`srun` sets; JAX_COORDINATOR_PORT picks a free port) join one job from an empty
`distributed` config, and explicit values and no cluster keep their old behaviour."""

from __future__ import annotations

import json

import pytest

from rmpl_jax.train import distributed as dist
from tests.testing.subproc import NPROC, free_port, run_workers

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


def test_two_processes_in_a_slurm_step_join_one_job(tmp_path, monkeypatch):
    for var in SLURM_VARS:
        monkeypatch.delenv(var, raising=False)
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_NODELIST": "127.0.0.1",
        "SLURM_NTASKS": str(NPROC),
        "JAX_COORDINATOR_PORT": str(free_port()),
    }
    # SLURM_PROCID / SLURM_LOCALID differ per process: run_workers passes the process index.
    outs = run_workers("cluster_worker.py", tmp_path, extra_env=env, per_process_env=("SLURM_PROCID", "SLURM_LOCALID"))
    result = json.loads(outs[0].strip().splitlines()[-1])
    assert result == {
        "joined": True,
        "cluster": "slurm",
        "process_count": 2,
        "device_count": 2,
        "gathered": [0, 1],
    }


def test_no_cluster_and_no_values_is_a_single_process_run(monkeypatch):
    for var in SLURM_VARS + ("OMPI_MCA_orte_hnp_uri",):
        monkeypatch.delenv(var, raising=False)
    if dist.detected_cluster() is not None:
        pytest.skip(f"this machine is in a {dist.detected_cluster()} environment")
    assert dist.initialize() is False
    assert dist.initialize_from_config({"num_processes": 1}) is False


def test_partial_explicit_values_are_refused(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1")  # explicit values are checked before any detection
    with pytest.raises(ValueError, match="must be given together"):
        dist.initialize("127.0.0.1:1234", None, None)
