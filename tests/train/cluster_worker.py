"""One process of test_cluster_autodetect: `python cluster_worker.py PID NPROC PORT OUTDIR`.
The test sets a SLURM job's environment (no coordinator, count or id given to us); the
worker initialises from an empty `distributed` config block, as every worker of a cluster
would, and checks it joined the others: one all-gather across the processes. Process 0
prints one JSON line."""

from __future__ import annotations

import json

from rmpl_jax.train import distributed as dist

joined = dist.initialize_from_config({})
cluster = dist.detected_cluster()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

ids = np.asarray(multihost_utils.process_allgather(np.int32(jax.process_index()))).reshape(-1)
if jax.process_index() == 0:
    print(
        json.dumps(
            {
                "joined": joined,
                "cluster": cluster,
                "process_count": jax.process_count(),
                "device_count": jax.device_count(),
                "gathered": ids.tolist(),
            }
        )
    )
