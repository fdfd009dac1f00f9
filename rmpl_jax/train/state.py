"""The train state: the model split into a static `ParamLayout` and two flat dicts of arrays
keyed by '/'-joined parameter paths — trainable (LoRA adapters plus whatever a stage marks
trainable by regex) and frozen (everything else) — with the optimizer state, step and RNG.

Flat string keys keep the state a plain pytree for optax, jit shardings and Orbax, and give
one naming for regexes, checkpoints and error messages.

    layout, trainable, frozen = split_model(model, cfg.trainable_regex)
    state = create_train_state(layout, trainable, frozen, tx, mesh, rules)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rmpl_jax.train import sharding as shd

Flat = dict[str, jax.Array]


# --------------------------------------------------------------------------- layout


@dataclasses.dataclass(frozen=True, eq=False)
class ParamLayout:
    """Static description of a split model: rebuilds the NNX model from two flat dicts."""

    graphdef: Any
    trainable_def: Any
    trainable_names: tuple[str, ...]
    frozen_def: Any
    frozen_names: tuple[str, ...]
    axis_names: Mapping[str, tuple[str | None, ...] | None]

    def merge(self, trainable: Mapping[str, jax.Array], frozen: Mapping[str, jax.Array]):
        """The NNX model with these parameter values (usable inside jit)."""
        tr = jax.tree.unflatten(self.trainable_def, [trainable[n] for n in self.trainable_names])
        fr = jax.tree.unflatten(self.frozen_def, [frozen[n] for n in self.frozen_names])
        return nnx.merge(self.graphdef, tr, fr)

    def param_shardings(
        self, params: Mapping[str, Any], mesh: Mesh, rules: shd.Rules | None = None
    ) -> dict[str, NamedSharding]:
        """NamedSharding per flat parameter from its logical axis names."""
        table = shd.normalize_rules(rules, mesh)
        return {
            n: NamedSharding(mesh, shd.logical_to_spec(self.axis_names.get(n), tuple(v.shape), mesh, table, where=n))
            for n, v in params.items()
        }


def _flatten_state(state: nnx.State) -> tuple[Any, tuple[str, ...], Flat, dict]:
    def is_var(x):
        return isinstance(x, nnx.Variable)

    with_path, _ = jax.tree_util.tree_flatten_with_path(state, is_leaf=is_var)
    leaves, treedef = jax.tree.flatten(state)
    if len(leaves) != len(with_path):
        raise ValueError(
            "ParamLayout: a variable holds more than one array leaf; "
            "hijax/ref variables are not supported by the train step"
        )
    names = tuple(shd.path_str(p) for p, _ in with_path)
    axes = {n: (shd.variable_axis_names(v) if is_var(v) else None) for n, (_, v) in zip(names, with_path)}
    return treedef, names, dict(zip(names, leaves)), axes


def _as_patterns(regex: str | Sequence[str] | None) -> list[re.Pattern]:
    if regex is None:
        return []
    items = [regex] if isinstance(regex, str) else list(regex)
    out = []
    for r in items:
        try:
            out.append(re.compile(r))
        except re.error as e:
            raise ValueError(f"trainable regex {r!r} is invalid: {e}") from e
    return out


def split_model(
    model: nnx.Module,
    trainable_regex: str | Sequence[str] | None = None,
    adapter_type: type | None = None,
) -> tuple[ParamLayout, Flat, Flat]:
    """Splits a model into (layout, trainable, frozen).

    Trainable = every `adapter_type` variable (default: `nnx.LoRAParam`) plus every `nnx.Param`
    whose '/'-joined path matches one of `trainable_regex` (`re.search`), e.g.
    r'visual/merger/'. Each regex must match at least one parameter (a typo would otherwise
    freeze what the config meant to train). All other variables are frozen.
    """
    adapter_type = adapter_type or nnx.LoRAParam
    patterns = _as_patterns(trainable_regex)
    hits = {p.pattern: 0 for p in patterns}

    def is_trainable(path, var):
        if isinstance(var, adapter_type):
            return True
        if not isinstance(var, nnx.Param):
            return False
        name = shd.path_str(path)
        matched = [p for p in patterns if p.search(name)]
        for p in matched:
            hits[p.pattern] += 1
        return bool(matched)

    graphdef, trainable_state, frozen_state = nnx.split(model, is_trainable, ...)
    missed = [p for p, n in hits.items() if n == 0]
    if missed:
        raise ValueError(f"trainable regex(es) {missed} matched no parameter of {type(model).__name__}")
    tdef, tnames, trainable, taxes = _flatten_state(trainable_state)
    fdef, fnames, frozen, faxes = _flatten_state(frozen_state)
    if not tnames:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameters: no "
            f"{adapter_type.__name__} variables and no regex given"
        )
    layout = ParamLayout(graphdef, tdef, tnames, fdef, fnames, {**faxes, **taxes})
    return layout, trainable, frozen


# --------------------------------------------------------------------------- state


@struct.dataclass
class TrainState:
    """Everything a step reads and writes. A pytree; `frozen` is not checkpointed.

    step: int32 scalar, number of updates done. rng: uint32[2] key, advanced every step.
    trainable / frozen: flat {'/'-path: array}. opt_state: optax state of `trainable` only.
    """

    step: jax.Array
    rng: jax.Array
    trainable: Flat
    frozen: Flat
    opt_state: Any


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def _opt_shardings(
    abstract_opt: Any, param_sh: Mapping[str, NamedSharding], params: Mapping[str, Any], mesh: Mesh
) -> Any:
    """Optimizer leaves that mirror a parameter (Adam moments) take its sharding."""

    def one(path, leaf):
        for k in reversed(path):
            key = getattr(k, "key", None)
            if isinstance(key, str) and key in param_sh:
                if tuple(leaf.shape) == tuple(params[key].shape):
                    return param_sh[key]
                break
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(one, abstract_opt)


def state_shardings(
    layout: ParamLayout,
    state: TrainState,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    rules: shd.Rules | None = None,
) -> TrainState:
    """TrainState-shaped tree of NamedShardings (state may be concrete or abstract)."""
    tr_sh = layout.param_shardings(state.trainable, mesh, rules)
    fr_sh = layout.param_shardings(state.frozen, mesh, rules)
    abstract_opt = jax.eval_shape(optimizer.init, state.trainable)
    return TrainState(
        step=replicated(mesh),
        rng=replicated(mesh),
        trainable=tr_sh,
        frozen=fr_sh,
        opt_state=_opt_shardings(abstract_opt, tr_sh, state.trainable, mesh),
    )


def _place(value: Any, sharding: NamedSharding, dtype: Any = None, copy: bool = False) -> jax.Array:
    """Puts a param onto a (possibly multi-process) sharding, casting floats to `dtype`.

    A global device array is resharded on device; anything else goes through the host and
    must then hold the same value on every process (e.g. a model built from one seed).
    `copy` guarantees a fresh buffer (trainables are donated to the step; the caller's model
    must not lose its arrays).
    """
    # (no np.asarray for arrays: it would pull a global array to the host, or fail)
    src_dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    is_float = jnp.issubdtype(src_dtype, jnp.floating)
    dtype = jnp.dtype(dtype) if dtype is not None and is_float else None
    if isinstance(value, jax.Array) and (not value.is_fully_addressable or sharding.is_fully_addressable):
        x = value if value.sharding == sharding else jax.device_put(value, sharding)
        if (dtype is None or x.dtype == dtype) and not copy:
            return x
        return jax.jit(lambda a: a.astype(dtype or a.dtype), out_shardings=sharding)(x)
    arr = np.asarray(value)
    if dtype is not None:
        arr = arr.astype(dtype)
    return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])


def create_train_state(
    layout: ParamLayout,
    trainable: Mapping[str, Any],
    frozen: Mapping[str, Any],
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    rules: shd.Rules | None = None,
    *,
    seed: int = 0,
    trainable_dtype: Any = jnp.float32,
    frozen_dtype: Any = None,
) -> TrainState:
    """Places params on the mesh and initialises the optimizer on the trainables only.

    Trainables are kept in `trainable_dtype` (f32 master copy); floating frozen params are
    cast to `frozen_dtype` when given (bf16 halves the memory of the frozen base model).
    Host inputs must be identical on every process.
    """
    tr_sh = layout.param_shardings(trainable, mesh, rules)
    fr_sh = layout.param_shardings(frozen, mesh, rules)
    tr = {n: _place(v, tr_sh[n], trainable_dtype, copy=True) for n, v in trainable.items()}
    fr = {n: _place(v, fr_sh[n], frozen_dtype) for n, v in frozen.items()}
    abstract_opt = jax.eval_shape(optimizer.init, tr)
    opt_sh = _opt_shardings(abstract_opt, tr_sh, tr, mesh)
    opt_state = jax.jit(optimizer.init, out_shardings=opt_sh)(tr)
    rep = replicated(mesh)
    key = np.asarray(jax.random.key_data(jax.random.key(seed)), np.uint32)
    return TrainState(step=_place(np.int32(0), rep), rng=_place(key, rep), trainable=tr, frozen=fr, opt_state=opt_state)


def abstract_train_state(
    layout: ParamLayout,
    trainable: Mapping[str, Any],
    frozen: Mapping[str, Any],
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    rules: shd.Rules | None = None,
) -> TrainState:
    """What `create_train_state` would return, as ShapeDtypeStructs with their shardings:
    f32 trainables, frozen params in their own dtype. Nothing is allocated (AOT compiles of
    full-size models, e.g. for abstract TPU chips)."""
    f32 = {k: jax.ShapeDtypeStruct(v.shape, jnp.float32) for k, v in trainable.items()}
    fr = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in frozen.items()}
    raw = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        rng=jax.ShapeDtypeStruct((2,), jnp.uint32),
        trainable=f32,
        frozen=fr,
        opt_state=jax.eval_shape(optimizer.init, f32),
    )
    sh = state_shardings(layout, raw, optimizer, mesh, rules)
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), raw, sh)


def abstract(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) for a tree of arrays: input for AOT lowering."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), tree)
