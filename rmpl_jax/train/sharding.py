"""Device mesh, logical-axis rules and the shardings they give to params and batches.

Parameters carry logical axis names in their NNX metadata (`sharding_names=...`, stored by
flax 0.12 as `out_sharding`). A rule list maps each logical name to a mesh axis (or a tuple
of mesh axes, or None = replicated); this module turns names + rules + mesh into
`NamedSharding`s. Rules are plain `(logical_name, mesh_axis_or_None)` pairs so a config
file can hold them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Defaults: FSDP over the model width, tensor parallel over heads / MLP / vocab; the scan
# axis, LoRA rank and small vectors stay whole. `batch` spreads examples over every
# data-like axis.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("mlp", "tensor"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("layers", None),
    ("lora_rank", None),
    ("norm", None),
    ("head_dim", None),
    ("vision_embed", "fsdp"),
    ("vision_heads", "tensor"),
    ("vision_mlp", "tensor"),
    ("patch", None),
    ("length", None),
)

Rules = Sequence[tuple[str, Any]]


def make_mesh(
    mesh_shape: Sequence[int] = (-1, 1, 1),
    axis_names: Sequence[str] = MESH_AXES,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """Builds a mesh over `devices` (default: all global devices).

    One entry of `mesh_shape` may be -1: it takes whatever the others leave. Axis types are
    `Auto` (jax's `make_mesh` defaults to `Explicit` in recent versions, which would change
    the meaning of ops inside jit).
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = [int(s) for s in mesh_shape]
    if len(shape) != len(axis_names):
        raise ValueError(
            f"mesh_shape {tuple(mesh_shape)} has {len(shape)} entries but there are "
            f"{len(axis_names)} mesh axes {tuple(axis_names)}"
        )
    if shape.count(-1) > 1:
        raise ValueError(f"mesh_shape {tuple(mesh_shape)}: at most one entry may be -1")
    if any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh_shape {tuple(mesh_shape)}: entries must be positive or -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if len(devices) % known:
            raise ValueError(
                f"mesh_shape {tuple(mesh_shape)}: {len(devices)} devices are not divisible by "
                f"the fixed axes product {known}"
            )
        shape[shape.index(-1)] = len(devices) // known
    if math.prod(shape) != len(devices):
        raise ValueError(f"mesh_shape {tuple(shape)} needs {math.prod(shape)} devices, {len(devices)} are available")
    axis_types = (jax.sharding.AxisType.Auto,) * len(shape)
    return jax.make_mesh(tuple(shape), tuple(axis_names), axis_types=axis_types, devices=devices)


def normalize_rules(rules: Rules | None, mesh: Mesh | None = None) -> dict[str, tuple[str, ...]]:
    """Validates a rule list and returns {logical_name: tuple_of_mesh_axes}.

    Accepts tuples or lists (ml_collections turns tuples into lists); an empty tuple and
    None both mean replicated. With `mesh`, every named mesh axis must exist.
    """
    rules = DEFAULT_RULES if rules is None else rules
    out: dict[str, tuple[str, ...]] = {}
    for i, rule in enumerate(rules):
        if not isinstance(rule, (tuple, list)) or len(rule) != 2 or not isinstance(rule[0], str):
            raise ValueError(f"sharding rule #{i} {rule!r}: expected (logical_name, mesh_axis_or_None)")
        name, target = rule
        if name in out:
            raise ValueError(f"sharding rule #{i}: logical name {name!r} appears twice")
        if target is None:
            axes: tuple[str, ...] = ()
        elif isinstance(target, str):
            axes = (target,)
        elif isinstance(target, (tuple, list)) and all(isinstance(a, str) for a in target):
            axes = tuple(target)
        else:
            raise ValueError(
                f"sharding rule #{i} for {name!r}: mesh axis must be a name, a tuple of names or None, got {target!r}"
            )
        if mesh is not None:
            for a in axes:
                if a not in mesh.axis_names:
                    raise ValueError(
                        f"sharding rule #{i} for {name!r}: mesh has no axis {a!r} (axes: {mesh.axis_names})"
                    )
        out[name] = axes
    return out


def logical_to_spec(
    names: Sequence[str | None] | None,
    shape: Sequence[int],
    mesh: Mesh,
    rules: Rules | None = None,
    where: str = "<array>",
) -> PartitionSpec:
    """PartitionSpec for one array from its logical axis names.

    A mesh axis that does not divide the dimension is left out (the dim is replicated over
    it) instead of failing: tiny test models (e.g. 2 KV heads) must still run on 8 devices,
    and real models keep the sharding they can. A mesh axis already used by an earlier dim
    is also left out (a PartitionSpec may name each mesh axis once). Size-1 mesh axes are
    dropped since they shard nothing.
    """
    if names is None:
        return PartitionSpec()
    table = rules if isinstance(rules, dict) else normalize_rules(rules, mesh)
    names = tuple(names)
    if len(names) != len(shape):
        raise ValueError(f"{where}: {len(names)} logical axis names {names} for an array of shape {tuple(shape)}")
    used: set[str] = set()
    spec = []
    for dim, name in zip(shape, names):
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise ValueError(f"{where}: logical axis {name!r} has no sharding rule (known: {sorted(table)})")
        chosen: list[str] = []
        prod = 1
        for axis in table[name]:
            size = mesh.shape[axis]
            if axis in used or size == 1 or dim % (prod * size):
                continue
            chosen.append(axis)
            prod *= size
        used.update(chosen)
        spec.append(None if not chosen else chosen[0] if len(chosen) == 1 else tuple(chosen))
    return PartitionSpec(*spec)


def variable_axis_names(var: nnx.Variable) -> tuple[str | None, ...] | None:
    """Logical axis names of an NNX variable (flax 0.12 keeps them as `out_sharding`)."""
    meta = var.get_metadata()
    names = meta.get("out_sharding") or meta.get("sharding_names") or meta.get("sharding")
    if names is None:
        return None
    if isinstance(names, PartitionSpec):
        names = tuple(names)
    return tuple(names)


def _shape_of(x: Any) -> tuple[int, ...]:
    # works for arrays and jax.ShapeDtypeStruct alike (np.shape would materialise the latter)
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def path_str(path: Sequence[Any]) -> str:
    """'/'-joined parameter path, the name used in checkpoints, regexes and errors."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def model_shardings(state: nnx.State, mesh: Mesh, rules: Rules | None = None) -> nnx.State:
    """Same-structure tree of NamedShardings for an NNX state (e.g. `nnx.state(model)`).

    Works on concrete or abstract (`nnx.eval_shape`) states. Variables without logical
    names are replicated.
    """
    table = normalize_rules(rules, mesh)

    def one(path, var):
        if not isinstance(var, nnx.Variable):
            return NamedSharding(mesh, PartitionSpec())
        spec = logical_to_spec(variable_axis_names(var), _shape_of(var.get_value()), mesh, table, where=path_str(path))
        return var.replace(NamedSharding(mesh, spec))

    return jax.tree_util.tree_map_with_path(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def variable_sharding(mesh: Mesh, rules: Rules | None = None):
    """`(path, variable) -> NamedSharding` from the variable's logical axis names: what a
    loader (`family.load_hf(..., shardings=)`) places each weight with, so every device
    receives only its own shard."""
    table = normalize_rules(rules, mesh)

    def sharding(path: str, var: nnx.Variable) -> NamedSharding:
        spec = logical_to_spec(variable_axis_names(var), _shape_of(var.get_value()), mesh, table, where=path)
        return NamedSharding(mesh, spec)

    return sharding


def batch_spec(
    shape: Sequence[int],
    mesh: Mesh,
    rules: Rules | None = None,
    logical_axes: Sequence[str | None] | None = None,
    where: str = "batch",
) -> PartitionSpec:
    """PartitionSpec for one batch array; by default dim 0 is the logical `batch` axis.

    Unlike params, a batch dim that the batch mesh axes do not divide is an error: the
    global batch size is a config choice and must fit the mesh.
    """
    table = normalize_rules(rules, mesh)
    names = tuple(logical_axes) if logical_axes is not None else (("batch",) + (None,) * (len(shape) - 1))
    if len(names) != len(shape):
        raise ValueError(f"{where}: logical axes {names} for an array of shape {tuple(shape)}")
    for dim, name in zip(shape, names):
        if name == "batch":
            need = math.prod(mesh.shape[a] for a in table.get("batch", ()))
            if dim % need:
                raise ValueError(
                    f"{where}: batch dim {dim} is not divisible by the batch mesh axes "
                    f"{table.get('batch')} (product {need})"
                )
    return logical_to_spec(names, shape, mesh, table, where=where)


@contextlib.contextmanager
def activate(mesh: Mesh, rules: Rules | None = None) -> Iterator[Mesh]:
    """Context: `jax.set_mesh(mesh)` plus flax's logical-axis rules,
    so models that constrain activations by logical name resolve them against this mesh."""
    table = normalize_rules(rules, mesh)
    flax_rules = tuple((k, (v if len(v) != 1 else v[0]) if v else None) for k, v in table.items())
    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.set_mesh(mesh))
        stack.enter_context(nnx.logical_axis_rules(flax_rules))
        yield mesh
