"""Multi-process setup and global batches.

`initialize` must run before anything touches a JAX backend (devices, arrays, jit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from rmpl_jax.train import sharding as shd


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    cpu_collectives: str | None = "auto",
    initialization_timeout: int = 300,
) -> bool:
    """Joins a multi-process job when configured; returns whether it did.

    With all three of coordinator_address ('host:port'), num_processes and process_id unset
    (or num_processes == 1) this is a no-op. On CPU, cross-process collectives need Gloo, set
    before the backend starts: `cpu_collectives='auto'` sets it unless JAX is restricted to
    non-CPU platforms; 'gloo'/'mpi' force one; None leaves JAX's choice.
    """
    given = [coordinator_address is not None, num_processes is not None, process_id is not None]
    if not any(given) or (num_processes == 1 and not coordinator_address):
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
    if cpu_collectives == "auto":
        platforms = (jax.config.jax_platforms or "").lower()
        cpu_collectives = "gloo" if (not platforms or "cpu" in platforms) else None
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
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
    process_id (missing keys = unset)."""
    get = cfg.get if isinstance(cfg, Mapping) else (lambda k, d=None: getattr(cfg, k, d))
    return initialize(get("coordinator_address", None), get("num_processes", None), get("process_id", None))


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
