"""The jitted, sharded train step (model-agnostic).

The step rebuilds the model from the state's two flat parameter dicts (`state.py`), runs
the forward and backward pass with the chunked loss, accumulates microbatches and applies
the optimizer; the mutable part of the state is donated.

Batch contract: a dict of arrays with `input_ids` [B, T] and `loss_mask` [B, T] (nonzero on
answer tokens), right-padded (`attention_mask` 1 on each row's first tokens), or packed
(`segment_ids` [B, T]: several examples per row, `data/packing.py`); the family's
`model_inputs` turns the rest (less `exclude_keys`) into the keyword inputs of
`model.hidden_states(**inputs, right_padded=True)`.
The loss is the mean token cross-entropy over all answer tokens of the global batch
(sum / count, so gradient accumulation and sharding do not change it).

    layout, trainable, frozen = split_model(model, cfg.trainable_regex)
    tx, schedule = make_optimizer(cfg.lr, warmup_steps=..., total_steps=...)
    state = create_train_state(layout, trainable, frozen, tx, mesh, rules)
    step = make_train_step(layout, tx, mesh, state, rules=rules, lr_schedule=schedule)
    step.compile(abstract(state), first_batch)      # prints memory before the loop
    state, metrics = step(state, batch)             # batch from distributed.global_batch
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from rmpl_jax.models.segments import segment_first
from rmpl_jax.train import loss as loss_lib
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.state import (
    Flat,
    ParamLayout,
    TrainState,
    replicated,
    state_shardings,
)


def _cast(tree: Mapping[str, jax.Array], dtype: Any) -> dict[str, jax.Array]:
    if dtype is None:
        return dict(tree)
    return {k: (v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v) for k, v in tree.items()}


def _input_tokens(batch: Mapping[str, jax.Array], input_key: str) -> jax.Array:
    """Tokens of the batch's rows, padding not counted (every position without an attention mask)."""
    if "attention_mask" in batch:
        return jnp.sum(batch["attention_mask"]).astype(jnp.float32)
    return jnp.float32(batch[input_key].size)


def _examples(batch: Mapping[str, jax.Array], input_key: str) -> jax.Array:
    """Examples in the batch: segments of packed rows, else rows with a token."""
    if "segment_ids" in batch:
        seg = batch["segment_ids"]
        return jnp.sum((seg > 0) & segment_first(seg)).astype(jnp.float32)
    if "attention_mask" in batch:
        return jnp.sum(jnp.any(batch["attention_mask"] > 0, axis=1)).astype(jnp.float32)
    return jnp.float32(batch[input_key].shape[0])


class TrainStep:
    """Callable `(state, batch) -> (state, metrics)`; one jit per batch structure.

    The mutable part of the state (trainable, opt_state, step, rng) is donated: do not use
    the old state's trainables after a call. Frozen params are an input only (never donated,
    never copied). Metrics are replicated f32 scalars: loss (mean over answer tokens),
    tokens, input_tokens (every token of the rows, padding not counted), batch_tokens (the
    rows' length times their number: input_tokens plus padding), examples, grad_norm,
    nonfinite (1 when the loss or a gradient was NaN/Inf: that step left trainables and
    optimizer state unchanged), learning_rate (when a schedule is given).
    """

    def __init__(
        self,
        layout: ParamLayout,
        optimizer: optax.GradientTransformation,
        mesh: Mesh,
        shardings: TrainState,
        *,
        rules: shd.Rules | None,
        grad_accum_steps: int,
        compute_dtype: Any,
        loss_chunk_size: int,
        max_targets: int | None = None,
        batch_logical_axes: Mapping[str, Sequence[str | None]] | None,
        input_key: str,
        mask_key: str,
        exclude_keys: Sequence[str],
        static_keys: Sequence[str],
        model_inputs: Callable[[Mapping[str, Any]], dict] | None,
        lr_schedule: Callable[[Any], Any] | None,
        donate: bool,
    ):
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        if loss_chunk_size < 1:
            raise ValueError(f"loss_chunk_size must be >= 1, got {loss_chunk_size}")
        self.layout, self.optimizer, self.mesh = layout, optimizer, mesh
        self.shardings = shardings
        self.rules = rules
        self.accum = int(grad_accum_steps)
        self.compute_dtype = jnp.dtype(compute_dtype) if compute_dtype else None
        self.chunk = int(loss_chunk_size)
        if max_targets is not None and max_targets < 1:
            raise ValueError(f"max_targets must be >= 1 (or None: every position), got {max_targets}")
        self.max_targets = None if max_targets is None else int(max_targets)
        self.batch_axes = dict(batch_logical_axes or {})
        self.input_key, self.mask_key = input_key, mask_key
        self.exclude = frozenset(exclude_keys)
        self.static = frozenset(static_keys)
        self.model_inputs = model_inputs or dict
        self.schedule = lr_schedule
        self.donate = donate
        self._jits: dict[Any, Any] = {}
        self._compiled: dict[Any, Any] = {}

    # -- batch handling
    def _logical(self, key: str, ndim: int) -> tuple[str | None, ...]:
        names = self.batch_axes.get(key)
        return tuple(names) if names is not None else ("batch",) + (None,) * (ndim - 1)

    def _batch_dim(self, key: str, ndim: int) -> int | None:
        names = self._logical(key, ndim)
        return names.index("batch") if "batch" in names else None

    def _split_static(self, batch: Mapping[str, Any]) -> tuple[dict, dict]:
        arrays = {k: v for k, v in batch.items() if k not in self.static}
        static = {k: np.asarray(v) for k, v in batch.items() if k in self.static}
        return arrays, static

    def check_batch(self, batch: Mapping[str, Any]) -> None:
        """Clear errors for a malformed batch, before anything is traced."""
        if not isinstance(batch, Mapping):
            raise TypeError(f"batch must be a dict of arrays, got {type(batch).__name__}")
        for k in (self.input_key, self.mask_key):
            if k not in batch:
                raise KeyError(f"batch is missing {k!r} (has {sorted(batch)})")
        ids, mask = batch[self.input_key], batch[self.mask_key]
        if len(ids.shape) != 2 or tuple(mask.shape) != tuple(ids.shape):
            raise ValueError(
                f"batch[{self.input_key!r}] {tuple(ids.shape)} and "
                f"batch[{self.mask_key!r}] {tuple(mask.shape)} must both be [B, T]"
            )
        table = shd.normalize_rules(self.rules, self.mesh)
        per_device = math.prod(self.mesh.shape[a] for a in table.get("batch", ()))
        for k, v in batch.items():
            if k in self.static:
                continue
            if not hasattr(v, "shape") or not hasattr(v, "dtype"):
                raise TypeError(
                    f"batch[{k!r}] is a {type(v).__name__}, not an array "
                    f"(list it in static_keys if it is a static input)"
                )
            d = self._batch_dim(k, len(v.shape))
            if d is None:
                if self.accum > 1:
                    raise ValueError(
                        f"batch[{k!r}] has no batch axis (logical axes "
                        f"{self._logical(k, len(v.shape))}); it cannot be split "
                        f"into {self.accum} microbatches"
                    )
                continue
            n = v.shape[d]
            examples = ids.shape[0]
            if self.accum > 1 and n % examples:
                raise ValueError(
                    f"batch[{k!r}]: {n} rows along the batch axis are not a whole number per example "
                    f"({examples} examples); they cannot be split into microbatches by example"
                )
            if n % (self.accum * per_device):
                raise ValueError(
                    f"batch[{k!r}]: batch size {n} must be divisible by grad_accum_steps "
                    f"({self.accum}) x batch mesh size ({per_device})"
                )

    def batch_shardings(self, batch: Mapping[str, Any]) -> dict[str, NamedSharding]:
        """Shardings the step expects for the (non-static) arrays of this batch."""
        arrays, _ = self._split_static(batch)
        return {
            k: NamedSharding(
                self.mesh,
                shd.batch_spec(
                    tuple(v.shape), self.mesh, self.rules, self._logical(k, len(v.shape)), where=f"batch[{k!r}]"
                ),
            )
            for k, v in arrays.items()
        }

    def _signature(self, batch: Mapping[str, Any]) -> Any:
        arrays, static = self._split_static(batch)
        return (tuple(sorted((k, tuple(v.shape), str(v.dtype)) for k, v in arrays.items())), _static_key(static))

    # -- the step body
    def _loss(self, trainable: Flat, frozen: Flat, mb: Mapping[str, jax.Array], static: Mapping[str, np.ndarray]):
        model = self.layout.merge(_cast(trainable, self.compute_dtype), frozen)
        batch = {k: v for k, v in {**mb, **static}.items() if k != self.mask_key and k not in self.exclude}
        inputs = self.model_inputs(batch)
        # Training rows are right-padded (causal attention over key lengths, no [B,1,T,T] mask)
        # or packed (the batch's segment_ids make the attention block-diagonal).
        hidden = model.hidden_states(**inputs, right_padded=True)
        targets, mask = loss_lib.next_token_targets(mb[self.input_key], mb[self.mask_key], mb.get("segment_ids"))
        if self.max_targets is None:
            return loss_lib.chunked_cross_entropy(hidden, model.logits_from_hidden, targets, mask, self.chunk)
        hidden, targets, mask, dropped = loss_lib.gather_targets(hidden, targets, mask, self.max_targets)
        loss_sum, count = loss_lib.chunked_cross_entropy(hidden, model.logits_from_hidden, targets, mask, self.chunk)
        # max_targets covers the longest answer of the data; an answer beyond it would be cut
        # silently, so it turns the loss NaN instead (the step keeps its weights, the guard stops).
        return jnp.where(dropped > 0, jnp.nan, loss_sum), count

    def _split_micro(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """[accum, ...] microbatches, split by example. A key with several rows per example
        along its batch axis (image patches: each example's rows, consecutive)
        moves those rows together, so every microbatch keeps whole images."""
        examples = batch[self.input_key].shape[0]
        out = {}
        for k, v in batch.items():
            d = self._batch_dim(k, v.ndim)
            x = jnp.moveaxis(v, d, 0)
            rows, per = x.shape[0], x.shape[0] // examples
            # Example i goes to microbatch i % n: each device's shard splits evenly across
            # microbatches, so no data moves between devices.
            x = x.reshape((examples // self.accum, self.accum, per) + x.shape[1:]).swapaxes(0, 1)
            x = x.reshape((self.accum, rows // self.accum) + x.shape[3:])
            out[k] = jnp.moveaxis(x, 1, d + 1)
        return out

    def _micro_static(self, static: Mapping[str, np.ndarray], examples: int) -> dict[str, np.ndarray]:
        """A microbatch's static inputs: a value with a whole number of rows per example (an
        image layout: one row per photo or photo slot) keeps the rows of one microbatch;
        those rows must be equal, since one compiled body serves every microbatch. Other
        values pass unchanged."""
        out = {}
        for k, v in static.items():
            if v.ndim and v.shape[0] and v.shape[0] % examples == 0:
                if not (v == v[:1]).all():
                    raise ValueError(
                        f"batch[{k!r}] differs between examples; with grad_accum_steps={self.accum} "
                        "every example of a batch needs the same value (one image size per batch)"
                    )
                v = v[: v.shape[0] // self.accum]
            out[k] = v
        return out

    def _step(self, mutable: dict, frozen: Flat, batch: Mapping[str, jax.Array], batch_sh, static):
        trainable = mutable["trainable"]
        frozen = _cast(frozen, self.compute_dtype)
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        if self.accum == 1:
            (loss_sum, count), grads = grad_fn(trainable, frozen, batch, static)
        else:
            micro = self._split_micro(batch)
            static = self._micro_static(static, batch[self.input_key].shape[0])
            tr_sh = self.shardings.trainable

            def body(carry, mb):
                g_acc, loss_acc, count_acc = carry
                mb = {k: jax.lax.with_sharding_constraint(v, batch_sh[k]) for k, v in mb.items()}
                (loss_mb, count_mb), g = grad_fn(trainable, frozen, mb, static)
                g_acc = {
                    k: jax.lax.with_sharding_constraint(g_acc[k] + g[k].astype(jnp.float32), tr_sh[k]) for k in g_acc
                }
                return (g_acc, loss_acc + loss_mb, count_acc + count_mb), None

            zeros = {k: jnp.zeros(v.shape, jnp.float32) for k, v in trainable.items()}
            init = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
            (grads, loss_sum, count), _ = jax.lax.scan(body, init, micro)
        denom = jnp.maximum(count, 1.0)
        grads = {k: (g / denom).astype(trainable[k].dtype) for k, g in grads.items()}
        updates, opt_state = self.optimizer.update(grads, mutable["opt_state"], trainable)
        rng, _ = jax.random.split(mutable["rng"])
        loss, grad_norm = loss_sum / denom, optax.tree.norm(grads)
        # A NaN/Inf loss or gradient leaves weights and optimizer state as they were; the host
        # sees `nonfinite` whenever it reads the metrics and stops there (train/numeric_guard.py).
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        metrics = {
            "loss": loss,
            "tokens": count,
            "input_tokens": _input_tokens(batch, self.input_key),
            "batch_tokens": jnp.float32(batch[self.input_key].size),
            "examples": _examples(batch, self.input_key),
            "grad_norm": grad_norm,
            "nonfinite": (~finite).astype(jnp.float32),
        }
        if self.schedule is not None:
            metrics["learning_rate"] = jnp.asarray(self.schedule(mutable["step"]), jnp.float32)
        new = {
            "step": mutable["step"] + 1,
            "rng": rng,
            "trainable": _keep_if(finite, optax.apply_updates(trainable, updates), trainable),
            "opt_state": _keep_if(finite, opt_state, mutable["opt_state"]),
        }
        return new, metrics

    def _mutable_shardings(self) -> dict:
        s = self.shardings
        return {"step": s.step, "rng": s.rng, "trainable": s.trainable, "opt_state": s.opt_state}

    def jitted(self, batch: Mapping[str, Any]):
        """The `jax.jit` function `(mutable, frozen, arrays) -> (mutable, metrics)` for this
        batch structure (keys, ranks, static values)."""
        arrays, static = self._split_static(batch)
        key = (tuple(sorted((k, len(v.shape)) for k, v in arrays.items())), _static_key(static))
        if key not in self._jits:
            batch_sh = self.batch_shardings(batch)
            mut_sh = self._mutable_shardings()

            def fn(mutable, frozen, b):
                return self._step(mutable, frozen, b, batch_sh, static)

            self._jits[key] = jax.jit(
                fn,
                in_shardings=(mut_sh, self.shardings.frozen, batch_sh),
                out_shardings=(mut_sh, replicated(self.mesh)),
                donate_argnums=(0,) if self.donate else (),
            )
        return self._jits[key]

    @staticmethod
    def _mutable(state: Any) -> dict:
        return {"step": state.step, "rng": state.rng, "trainable": state.trainable, "opt_state": state.opt_state}

    def lower(self, state: Any, batch: Mapping[str, Any]):
        """`jax.jit(...).lower` on a (possibly abstract, see `abstract`) state and batch."""
        self.check_batch(batch)
        arrays, _ = self._split_static(batch)
        with shd.activate(self.mesh, self.rules):
            return self.jitted(batch).lower(self._mutable(state), state.frozen, arrays)

    def compile(self, state: Any, batch: Mapping[str, Any], print_fn: Callable[[str], None] | None = print):
        """AOT-compiles for this batch shape and prints XLA's memory analysis (before any
        step runs). The executable is kept: later calls with the same shapes use it."""
        compiled = self.lower(state, batch).compile()
        if print_fn is not None:
            print_fn(format_memory(compiled))
        self._compiled[self._signature(batch)] = compiled
        return compiled

    def __call__(self, state: TrainState, batch: Mapping[str, Any]):
        self.check_batch(batch)
        arrays, _ = self._split_static(batch)
        fn = self._compiled.get(self._signature(batch))
        if fn is None:
            fn = self.jitted(batch)
        with shd.activate(self.mesh, self.rules):
            new, metrics = fn(self._mutable(state), state.frozen, arrays)
        return state.replace(**new), metrics


def _keep_if(ok: jax.Array, new: Any, old: Any) -> Any:
    """`new` where `ok`, else `old`, leaf by leaf."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def _static_key(static: Mapping[str, np.ndarray]) -> Any:
    return tuple(sorted((k, v.shape, str(v.dtype), v.tobytes()) for k, v in static.items()))


def format_memory(compiled: Any) -> str:
    """One line of XLA's compiled memory analysis (argument/output/temp/alias bytes)."""
    try:
        m = compiled.memory_analysis()
    except Exception as e:  # some backends do not implement it
        return f"memory analysis unavailable: {e}"
    if m is None:
        return "memory analysis unavailable"
    fields = ("argument", "output", "temp", "alias", "generated_code")
    parts = []
    for f in fields:
        v = getattr(m, f"{f}_size_in_bytes", None)
        if v is not None:
            parts.append(f"{f}={v / 2**20:.1f}MiB")
    return "compiled train step memory (per device): " + " ".join(parts)


def make_train_step(
    layout: ParamLayout,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    state: TrainState,
    *,
    rules: shd.Rules | None = None,
    grad_accum_steps: int = 1,
    compute_dtype: Any = None,
    loss_chunk_size: int = 512,
    max_targets: int | None = None,
    batch_logical_axes: Mapping[str, Sequence[str | None]] | None = None,
    input_key: str = "input_ids",
    mask_key: str = "loss_mask",
    exclude_keys: Sequence[str] = (),
    static_keys: Sequence[str] = (),
    model_inputs: Callable[[Mapping[str, Any]], dict] | None = None,
    lr_schedule: Callable[[Any], Any] | None = None,
    donate: bool = True,
) -> TrainStep:
    """Builds the sharded train step.

    Args:
      layout, optimizer, mesh, state: from `split_model`, `make_optimizer`, `make_mesh`,
        `create_train_state` (state may be abstract; only its shapes are read).
      rules: logical-axis rules (default `sharding.DEFAULT_RULES`).
      grad_accum_steps: microbatches per step, scanned; gradients summed in f32. The batch
        splits by example: a key with several rows per example along its batch axis
        (image patches) keeps each example's rows together, and a static key with
        one (equal) row per example gives each microbatch its share of rows.
      compute_dtype: e.g. 'bfloat16' casts floating params for the forward/backward;
        trainables stay f32 masters. None computes in the stored dtypes.
      loss_chunk_size: sequence positions per cross-entropy chunk.
      max_targets: answer positions per row gathered before the LM head (static; at least the
        longest answer of the data, e.g. `target_budget`); None projects every position.
      batch_logical_axes: per-key logical axes for batch arrays whose dim 0 is not the batch
        (e.g. {'position_ids': (None, 'batch', None)}).
      exclude_keys: batch keys not passed to the model (ids, bookkeeping).
      static_keys: batch keys passed to the model as host numpy constants, not traced
        (a family's `static_batch_keys`: image layouts); each distinct value compiles its own step.
      model_inputs: the family's `model_inputs` (batch -> keyword inputs of `hidden_states`);
        None passes the batch as it is.
      lr_schedule: if given, the step reports `learning_rate`.
      donate: donate the mutable state (trainables, optimizer state) to the step.
    Remat lives in the model (its layer-scan flag), not here.
    """
    shardings = state_shardings(layout, state, optimizer, mesh, rules)
    return TrainStep(
        layout,
        optimizer,
        mesh,
        shardings,
        rules=rules,
        grad_accum_steps=grad_accum_steps,
        compute_dtype=compute_dtype,
        loss_chunk_size=loss_chunk_size,
        max_targets=max_targets,
        batch_logical_axes=batch_logical_axes,
        input_key=input_key,
        mask_key=mask_key,
        exclude_keys=exclude_keys,
        static_keys=static_keys,
        model_inputs=model_inputs,
        lr_schedule=lr_schedule,
        donate=donate,
    )
