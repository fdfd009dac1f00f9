"""Multi-process setup and global batches.

`initialize` must run before anything touches a JAX backend (devices, arrays, jit). With
explicit values (coordinator, process count, process id) it joins that job; with none it
asks JAX's cluster detection (Cloud TPU VM slices, SLURM, Open MPI, Kubernetes), so the
same command on every worker of a slice or cluster joins one job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax._src import clusters as jax_clusters  # the environments jax.distributed.initialize() detects
from jax.sharding import Mesh, NamedSharding

from rmpl_jax.train import sharding as shd


def detected_cluster() -> str | None:
    """The cluster environment JAX's `jax.distributed.initialize()` would detect here
    ('slurm', 'ompi', 'gce_tpu', 'gke_tpu', 'k8s', ...), None outside one."""
    for env in jax_clusters.ClusterEnv._cluster_types:
        if not env.opt_in_only_method and env.is_env_present():
            return getattr(env, "name", env.__name__)
    return None


def _set_cpu_collectives(cpu_collectives: str | None) -> None:
    # On CPU, cross-process collectives need Gloo, set before the backend starts.
    if cpu_collectives == "auto":
        platforms = (jax.config.jax_platforms or "").lower()
        cpu_collectives = "gloo" if (not platforms or "cpu" in platforms) else None
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = True,
    local_device_ids: Sequence[int] | None = None,
    cpu_collectives: str | None = "auto",
    initialization_timeout: int = 300,
) -> bool:
    """Joins a multi-process job when configured or detected; returns whether it did.

    Explicit form: coordinator_address ('host:port'), num_processes and process_id, all
    three (num_processes == 1 alone is a single-process run). With none of them set and
    `auto`, a cluster environment JAX detects (`detected_cluster`) is joined with
    `jax.distributed.initialize()` and no arguments; outside one this is a no-op.
    `cpu_collectives='auto'` sets Gloo unless JAX is restricted to non-CPU platforms;
    'gloo'/'mpi' force one; None leaves JAX's choice.
    """
    given = [coordinator_address is not None, num_processes is not None, process_id is not None]
    if not any(given):
        cluster = detected_cluster() if auto else None
        if cluster is None:
            return False
        _set_cpu_collectives(cpu_collectives)
        try:
            jax.distributed.initialize(initialization_timeout=int(initialization_timeout))
        except (RuntimeError, ValueError) as e:
            raise RuntimeError(
                f"distributed: a {cluster} environment was detected but joining it failed ({e}); set "
                "distributed.coordinator_address, num_processes and process_id, or distributed.auto=False"
            ) from e
        return True
    if num_processes == 1 and not coordinator_address:
        return False
    if not all(given):
        raise ValueError(
            "distributed: coordinator_address, num_processes and process_id must "
            f"be given together (got {coordinator_address!r}, {num_processes!r}, "
            f"{process_id!r})"
        )
    host, _, port = str(coordinator_address).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f'distributed: coordinator_address must be "host:port", got {coordinator_address!r}')
    if int(num_processes) < 1 or not 0 <= int(process_id) < int(num_processes):
        raise ValueError(f"distributed: need 0 <= process_id ({process_id}) < num_processes ({num_processes})")
    _set_cpu_collectives(cpu_collectives)
    kwargs = dict(
        coordinator_address=str(coordinator_address),
        num_processes=int(num_processes),
        process_id=int(process_id),
        initialization_timeout=int(initialization_timeout),
    )
    if local_device_ids is not None:
        kwargs["local_device_ids"] = list(local_device_ids)
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as e:
        raise RuntimeError(
            f"distributed: jax.distributed.initialize failed ({e}); it must run "
            "before any JAX computation or device query"
        ) from e
    return True


def initialize_from_config(cfg: Mapping[str, Any] | Any) -> bool:
    """`initialize` from a config block with keys coordinator_address, num_processes,
    process_id and auto (missing keys = unset; auto defaults to True)."""
    get = cfg.get if isinstance(cfg, Mapping) else (lambda k, d=None: getattr(cfg, k, d))
    return initialize(
        get("coordinator_address", None),
        get("num_processes", None),
        get("process_id", None),
        auto=bool(get("auto", True)),
    )


def global_batch(
    local_batch: Mapping[str, Any],
    mesh: Mesh,
    rules: shd.Rules | None = None,
    logical_axes: Mapping[str, Sequence[str | None]] | None = None,
) -> dict[str, jax.Array]:
    """Global arrays from each process's slice of the batch.

    Every process passes its own examples (the same count on each); along the logical
    'batch' axis the global array is their concatenation in process order. Other axes must
    be identical across processes. Single-process: the local batch is the global one.
    """
    logical_axes = logical_axes or {}
    out = {}
    for k, v in local_batch.items():
        arr = np.asarray(v)
        names = tuple(logical_axes.get(k) or (("batch",) + (None,) * (arr.ndim - 1)))
        if len(names) != arr.ndim:
            raise ValueError(f"batch[{k!r}]: logical axes {names} for shape {arr.shape}")
        # The spec is derived from the global shape: batch dims grow by the process count.
        global_shape = tuple(d * jax.process_count() if n == "batch" else d for d, n in zip(arr.shape, names))
        spec = shd.batch_spec(global_shape, mesh, rules, names, where=f"batch[{k!r}]")
        sharding = NamedSharding(mesh, spec)
        out[k] = jax.make_array_from_process_local_data(sharding, arr, global_shape)
    return out


def local_batch_size(global_batch_size: int) -> int:
    """Examples each process contributes to a global batch."""
    n = jax.process_count()
    if global_batch_size % n:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by {n} processes")
    return global_batch_size // n


def describe(mesh: Mesh | None = None) -> str:
    """One line: process, device counts and mesh shape, for logs."""
    s = (
        f"process {jax.process_index()}/{jax.process_count()}: "
        f"{jax.local_device_count()} local / {jax.device_count()} global devices "
        f"({jax.devices()[0].platform})"
    )
    if mesh is not None:
        s += f", mesh {dict(mesh.shape)} ({math.prod(mesh.shape.values())} devices)"
    return s
