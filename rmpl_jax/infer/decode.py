"""Batched generation: prefill and the token-by-token loop in one `jax.jit` (`lax.while_loop`).

    decoder = Decoder(model, batch_size=16, max_new_tokens=128, eos_ids=(im_end,), pad_id=pad)
    outs = decoder.generate([Prompt(ids), Prompt(ids2, images)], grammar=None)  # images: the family's inputs

Shapes are static per (batch size, prompt bucket): prompts are LEFT-padded to the smallest
length bucket that holds the longest prompt of the batch, a short batch is filled with copies
of its last prompt, the KV cache [layers, B, kv_heads, bucket + max_new, head_dim] (compute
dtype, bf16 on accelerators) is allocated once per shape and donated to every call, and the
loop state lives on the device: one host transfer per batch, none per token. Left padding
puts every row's next token in the same cache slot, so one `dynamic_update_slice` writes it.

The model's family (`models.family`) supplies what differs between families: the image
features (the vision tower runs in its own jit, one compile per value of the family's static
image inputs; with the training `image_side` every photo has the same layout; the features,
padded to a multiple of `feature_multiple` rows, enter the decode jit as an array, so image
batches reuse the loop too), the prompt's position ids, computed on the host (Qwen2-VL: M-RoPE by HF's
`get_rope_index`; Llama: 1-D), and the position of each generated token (the row's next
position + i: on all three M-RoPE axes for Qwen2-VL, as HF does).

Stops: a row is done at its first end token (`eos_ids`); the loop ends when all rows are done
or after `max_new_tokens`. Greedy by default; temperature > 0 samples. With a grammar
(`constrained.TaskGrammar`) and per-prompt `constraint`s the logits of the allowed candidate
tokens are gathered and masked (see constrained.py; the tables: `constrained.ConstraintTables`);
the automaton state and the event-type register are two int32 per row in the loop state
(`LoopState`). `no_event_penalty` is subtracted from the logits of the tokens that begin a
`none` answer to an event-block task (text_mention, text_ee, image_mention, visual_ee,
multimedia): a threshold on "no event" that trades precision for recall without retraining
(chosen on held-out data, like the lexicon baseline's threshold).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jax.sharding import NamedSharding, PartitionSpec

from rmpl_jax.data.buckets import bucket_length
from rmpl_jax.data.pipeline import concat_image_inputs
from rmpl_jax.infer.constrained import (
    N_ENTRIES,
    TO_END,
    TO_LINE_START,
    ConstraintTables,
    TaskGrammar,
    batch_arrays,
    start_distance,
    value_shape,
)
from rmpl_jax.models.family import ModelFamily, family_of
from rmpl_jax.models.inputs import split_static, static_inputs
from rmpl_jax.models.layers import KVCache

DEFAULT_BUCKETS = (64, 128, 256, 512, 1024, 1536, 2048, 3072, 4096)
_BEYOND = 512  # prompts longer than the last bucket round up to a multiple of this


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One prompt: token ids [T] (chat formatted, generation prompt included), optionally the
    image inputs of its photos as the family's processor gives them (a dict of arrays, e.g.
    `Featurizer.prompt_features` less `input_ids`) and the example's
    `constrained.ExampleConstraint`."""

    input_ids: np.ndarray
    images: Mapping[str, np.ndarray] | None = None
    constraint: Any = None


@dataclasses.dataclass(frozen=True)
class Generation:
    """Generated ids up to and including the first end token; `finished`: an end token came
    before max_new_tokens ran out."""

    tokens: np.ndarray
    finished: bool


def pick_bucket(length: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= length (beyond the last: a multiple of 512)."""
    return bucket_length(length, buckets, overflow_multiple=_BEYOND)


class _Counter:
    def __init__(self):
        self.traces = 0


# ------------------------------------------------------------------------------ the loop


@dataclasses.dataclass(frozen=True)
class GlobalTables:
    """The constraint tables over global states (skeleton rows 0..S_s-1, value rows S_s + r)
    as every step reads them, computed once per call inside the jit (`_constrained_tables`).

    num_skeleton, num_values: S_s and S_v (static); dist [B, S_s + S_v] int32: per row, the
    fewest tokens that finish the answer from each state (a skeleton row's through the value
    entries its example can complete); types [S_s + S_v] int32: the event type the register
    takes on entering a state (-1 keeps it); ids [B, C_s + C_v] int32: the candidates' token
    ids (the skeleton's, then the row's values'); no_event [S_s + S_v] bool: states inside a
    `none` answer of an event-block task.
    """

    num_skeleton: int
    num_values: int
    dist: jax.Array
    types: jax.Array
    ids: jax.Array
    no_event: jax.Array


@struct.dataclass
class LoopState:
    """The decode loop's carry (`lax.while_loop`) for a batch of B rows.

    step [] int32: tokens generated so far; logits [B, V]: the next token's logits; cache: the
    KV cache; valid [B, T + max_new] bool: the cache slots a query attends (the prompt's real
    tokens and the generated ones); tokens [B, max_new] int32: the generated ids (pad after a
    row's end token); done [B] bool: the row has produced an end token; state [B] int32: the
    constraint automaton's global state; event_type [B] int32: the event-type register (-1:
    none yet). Without a grammar, state and event_type stay 0.
    """

    step: jax.Array
    logits: jax.Array
    cache: KVCache
    valid: jax.Array
    tokens: jax.Array
    done: jax.Array
    state: jax.Array
    event_type: jax.Array


def _constrained_tables(cons: ConstraintTables, batch: int) -> GlobalTables:
    """Skeleton + value tables as used every step; dist over all global states per row."""
    skel, values = cons.skeleton, cons.values
    s_s = skel.next.shape[0]
    e = values.dist[:, :N_ENTRIES]  # [B, J] tokens to finish from each value entry
    via = jnp.min(skel.tokdist[None] + e[:, None, :], axis=-1)  # [B, S_s]
    dist_s = jnp.minimum(skel.direct[None], via)
    dist = jnp.concatenate([dist_s, values.dist], axis=1)  # [B, S_s + S_v]
    s_v = values.dist.shape[1]
    types = jnp.concatenate([skel.types, jnp.full((s_v,), -1, jnp.int32)])
    ids = jnp.concatenate(
        [jnp.broadcast_to(skel.ids, (batch, skel.ids.shape[0])), values.ids], axis=1
    )  # [B, C_s + C_v]
    no_event = jnp.concatenate([skel.no_event, jnp.zeros((s_v,), bool)])
    return GlobalTables(s_s, s_v, dist, types, ids, no_event)


def _allowed_next(cons: ConstraintTables, tables: GlobalTables, q, t):
    """Next global state per candidate [B, C_s + C_v] (-1: not allowed by the grammar)."""
    skel, values = cons.skeleton, cons.values
    s_s, s_v = tables.num_skeleton, tables.num_values
    in_skel = q < s_s
    ns = skel.next[jnp.clip(q, 0, s_s - 1)]
    ns = jnp.where(in_skel[:, None], ns, -1)
    rows = jnp.clip(q - s_s, 0, s_v - 1)
    nv = jnp.take_along_axis(values.next, rows[:, None, None], axis=1)[:, 0].astype(jnp.int32)
    line = skel.line_start[jnp.clip(t, 0, skel.line_start.shape[0] - 1)]
    nv = jnp.where(
        nv >= 0, nv + s_s, jnp.where(nv == TO_LINE_START, line[:, None], jnp.where(nv == TO_END, skel.end, -1))
    )
    nv = jnp.where(in_skel[:, None], -1, nv)
    return jnp.concatenate([ns, nv], axis=1)


def _choose(logits, key, temperature, sample: bool):
    if not sample:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


@functools.lru_cache(maxsize=32)
def _loop_fn(
    family: ModelFamily,
    graphdef,
    max_new: int,
    eos_ids: tuple[int, ...],
    pad_id: int,
    sample: bool,
    cache_sharding: NamedSharding | None,
):
    """The jitted prefill + decode loop for one model structure and settings (shared by every
    Decoder of that model, so a training loop's periodic evaluation compiles once).
    cache_sharding: pins the returned cache to the sharding the fresh one was made with, so
    the donated cache of the next call has the same type and the loop is not traced again."""
    counter = _Counter()
    eos = np.asarray(eos_ids, np.int32)

    def run(
        state,
        ids,
        mask,
        positions,
        next_pos,
        features,
        cache: KVCache,
        rng,
        temperature,
        no_event_penalty,
        cons: ConstraintTables | None,
    ):
        counter.traces += 1
        model = nnx.merge(graphdef, state)
        batch, prompt_len = ids.shape
        logits, cache = model.prefill(
            ids, attention_mask=mask, position_ids=positions, cache=cache, image_features=features
        )
        valid = jnp.zeros((batch, cache.k.shape[3]), bool).at[:, :prompt_len].set(mask.astype(bool))
        tokens = jnp.full((batch, max_new), pad_id, jnp.int32)
        done = jnp.zeros((batch,), bool)
        if cons is not None:
            tables = _constrained_tables(cons, batch)
            q, t = cons.values.start, cons.values.type0
        else:
            q = t = jnp.zeros((batch,), jnp.int32)

        def cond(loop: LoopState):
            return (loop.step < max_new) & ~jnp.all(loop.done)

        def body(loop: LoopState) -> LoopState:
            i, done, q, t = loop.step, loop.done, loop.state, loop.event_type
            key = jax.random.fold_in(rng, i)
            if cons is None:
                tok = _choose(loop.logits, key, temperature, sample)
            else:
                dist, types, cand, no_event = tables.dist, tables.types, tables.ids, tables.no_event
                nxt = _allowed_next(cons, tables, q, t)
                d = jnp.take_along_axis(dist, jnp.clip(nxt, 0, dist.shape[1] - 1), axis=1)
                ok = (nxt >= 0) & (d + 1 <= max_new - i)  # the answer can still end in budget
                cand_logits = jnp.take_along_axis(loop.logits, cand, axis=1)
                # A threshold on "no event": the tokens that start the `none` answer pay the penalty.
                enters = no_event[jnp.clip(nxt, 0, no_event.shape[0] - 1)] & ~no_event[q][:, None]
                cand_logits = cand_logits - jnp.where(enters, no_event_penalty, 0.0).astype(cand_logits.dtype)
                choice = _choose(jnp.where(ok, cand_logits, -jnp.inf), key, temperature, sample)
                tok = jnp.take_along_axis(cand, choice[:, None], axis=1)[:, 0]
                q_new = jnp.take_along_axis(nxt, choice[:, None], axis=1)[:, 0]
                t_new = types[jnp.clip(q_new, 0, types.shape[0] - 1)]
                t = jnp.where(done | (t_new < 0), t, t_new)
                q = jnp.where(done, q, q_new)
            tok = jnp.where(done, pad_id, tok)
            tokens = jax.lax.dynamic_update_slice(loop.tokens, tok[:, None], (jnp.int32(0), i))
            done = done | jnp.isin(tok, eos)
            slot = prompt_len + i
            valid = jax.lax.dynamic_update_slice(loop.valid, jnp.ones((batch, 1), bool), (jnp.int32(0), slot))
            pos = family.decode_positions(next_pos + i)
            step_logits, cache = model.decode_step(
                tok[:, None], position_ids=pos, cache=loop.cache, slot=slot, key_mask=valid
            )
            return LoopState(
                step=i + 1,
                logits=step_logits[:, 0],
                cache=cache,
                valid=valid,
                tokens=tokens,
                done=done,
                state=q,
                event_type=t,
            )

        start = LoopState(
            step=jnp.int32(0), logits=logits, cache=cache, valid=valid, tokens=tokens, done=done, state=q, event_type=t
        )
        final = jax.lax.while_loop(cond, body, start)
        cache = final.cache
        if cache_sharding is not None:
            cache = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, cache_sharding), cache)
        return final.tokens, cache

    return jax.jit(run, donate_argnames=("cache",)), counter


@functools.lru_cache(maxsize=64)
def _vision_fn(family: ModelFamily, graphdef, static: tuple):
    """The jitted image features for one value of the family's static image inputs
    (`static`: a `models.inputs.split_static` key)."""
    constants = static_inputs(static)

    @jax.jit
    def run(state, arrays):
        return family.image_features(nnx.merge(graphdef, state), {**arrays, **constants})

    return run


# ------------------------------------------------------------------------------ host side


# Mesh axes a decode batch is split over (the data-parallel axes of `train.sharding`'s mesh).
BATCH_AXES = ("data", "fsdp")


def _batch_shardings(state, batch: int) -> tuple[NamedSharding | None, NamedSharding | None]:
    """(rows [B, ...], KV cache [layers, B, ...]) shardings on the weights' mesh when they
    live on one (else None: default device). Rows are split over the mesh's data axes when
    they divide the batch, else every device runs the whole batch."""
    for leaf in jax.tree.leaves(state):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding):
            mesh = sharding.mesh
            axes = tuple(a for a in BATCH_AXES if a in mesh.shape and mesh.shape[a] > 1)
            if not axes or batch % int(np.prod([mesh.shape[a] for a in axes])):
                return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec())
            return NamedSharding(mesh, PartitionSpec(axes)), NamedSharding(mesh, PartitionSpec(None, axes))
    return None, None


class Pending:
    """A submitted batch; `result()` waits for the device and returns one Generation per prompt."""

    def __init__(self, tokens, n_real: int, eos_ids):
        self._tokens, self._n, self._eos = tokens, n_real, np.asarray(eos_ids)

    def result(self) -> list[Generation]:
        tokens = np.asarray(self._tokens)[: self._n]
        out = []
        for row in tokens:
            hits = np.flatnonzero(np.isin(row, self._eos))
            if len(hits):
                out.append(Generation(row[: hits[0] + 1].copy(), True))
            else:
                out.append(Generation(row.copy(), False))
        return out


class Decoder:
    """Generation with one model; see the module docstring.

    model: a family's `CausalLM` (`models.family`). batch_size: rows per call (fixed, so
    shapes are static).
    cache_dtype: KV cache dtype (default the model's compute dtype).
    no_event_penalty: subtracted from the logits that begin a `none` answer to an event-block
    task (constrained decoding only; 0 leaves greedy decoding as it was).
    """

    def __init__(
        self,
        model,
        *,
        batch_size: int,
        max_new_tokens: int,
        eos_ids: Sequence[int],
        pad_id: int,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        temperature: float = 0.0,
        cache_dtype=None,
        feature_multiple: int = 256,
        seed: int = 0,
        no_event_penalty: float = 0.0,
    ):
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError(f"batch_size ({batch_size}) and max_new_tokens ({max_new_tokens}) must be >= 1")
        if not eos_ids:
            raise ValueError("eos_ids is empty: generation could never stop before max_new_tokens")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not np.isfinite(no_event_penalty):
            raise ValueError(f"no_event_penalty must be a finite number, got {no_event_penalty}")
        self.config = model.config
        self._model_width = model.dims.hidden_size  # the LM's width (image features' too)
        self.family = family_of(model)
        self._new_cache = model.init_cache
        self.graphdef, self.state = nnx.split(model)
        self._vision = self.family.has_vision(self.config)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.eos_ids = tuple(int(e) for e in eos_ids)
        self.pad_id = int(pad_id)
        self.buckets = tuple(sorted(int(b) for b in buckets))
        self.temperature = float(temperature)
        self.no_event_penalty = float(no_event_penalty)
        self.cache_dtype = jnp.dtype(cache_dtype or self.config.compute_dtype)
        self.feature_multiple = int(feature_multiple)
        self._rng = jax.random.key(seed)
        self._calls = 0
        self._caches: dict[tuple[int, int], KVCache] = {}
        self._value_shapes: dict[int, tuple[int, int]] = {}  # prompt bucket -> value table shape
        self._row_sharding, self._cache_sharding = _batch_shardings(self.state, self.batch_size)
        self._fn, self._counter = _loop_fn(
            self.family,
            self.graphdef,
            self.max_new_tokens,
            self.eos_ids,
            self.pad_id,
            self.temperature > 0,
            self._cache_sharding,
        )

    @property
    def traces(self) -> int:
        """How many times the decode loop was traced (= compiled) for this model structure."""
        return self._counter.traces

    # -- batch assembly ------------------------------------------------------------------------
    def _cache(self, batch: int, length: int) -> KVCache:
        cache = self._caches.pop((batch, length), None)
        if cache is None or cache.k.is_deleted():
            cache = self._new_cache(batch, length, self.cache_dtype)
            if self._cache_sharding is not None:
                cache = jax.device_put(cache, self._cache_sharding)
        return cache

    def _features(self, rows: Sequence[Prompt]):
        """(image features padded to `feature_multiple` rows, the batch's image inputs), or
        (None, None) for a batch without photos."""
        with_images = [r.images for r in rows if r.images]
        if not with_images:
            return None, None
        if not self._vision:
            raise ValueError(f"prompts carry image inputs {sorted(with_images[0])} but the model has no vision tower")
        images = concat_image_inputs(with_images)
        arrays, static = split_static(images, self.family.static_batch_keys)
        arrays = {
            k: jnp.asarray(v, jnp.float32 if np.issubdtype(v.dtype, np.floating) else v.dtype)
            for k, v in arrays.items()
        }
        feats = _vision_fn(self.family, self.graphdef, static)(self.state, arrays)
        n = feats.shape[0]
        padded = -(-n // self.feature_multiple) * self.feature_multiple
        if padded != n:
            feats = jnp.pad(feats, ((0, padded - n), (0, 0)))
        return feats, images

    def submit(
        self,
        prompts: Sequence[Prompt],
        grammar: TaskGrammar | None = None,
        temperature: float | None = None,
        shape_hint: tuple[int, int] | None = None,
    ) -> Pending:
        """Dispatches one batch (<= batch_size prompts) without waiting for the device.

        Constrained: the examples' value tables are padded to the largest (rows, candidates)
        seen so far for this prompt bucket, and at least to `shape_hint` (callers that know
        all their examples pass the bucket's maximum, so the loop compiles once per bucket).
        """
        if not prompts:
            raise ValueError("no prompts")
        if len(prompts) > self.batch_size:
            raise ValueError(f"{len(prompts)} prompts for a decoder of batch_size {self.batch_size}")
        for i, p in enumerate(prompts):
            if np.asarray(p.input_ids).ndim != 1 or len(p.input_ids) == 0:
                raise ValueError(f"prompt {i}: input_ids must be a non-empty 1-D array")
            if grammar is not None and p.constraint is None:
                raise ValueError(f"prompt {i}: a grammar was given but the prompt has no constraint")
        rows = list(prompts) + [prompts[-1]] * (self.batch_size - len(prompts))
        b = self.batch_size
        length = pick_bucket(max(len(p.input_ids) for p in rows), self.buckets)
        ids = np.full((b, length), self.pad_id, np.int32)
        mask = np.zeros((b, length), np.int32)
        for i, p in enumerate(rows):
            n = len(p.input_ids)
            ids[i, length - n :] = p.input_ids
            mask[i, length - n :] = 1
        features, images = self._features(rows)
        positions, next_pos = self.family.prompt_positions(self.config, ids, mask, images)
        cons = None
        if grammar is not None:
            for i, p in enumerate(prompts):
                need = start_distance(grammar, p.constraint)
                if need > self.max_new_tokens:
                    raise ValueError(
                        f"prompt {i}: the shortest complete answer takes {need} tokens, "
                        f"more than max_new_tokens={self.max_new_tokens}"
                    )
            constraints = [r.constraint for r in rows]
            shape = np.maximum.reduce(
                [
                    np.asarray(value_shape(constraints)),
                    np.asarray(self._value_shapes.get(length, (0, 0))),
                    np.asarray(shape_hint or (0, 0)),
                ]
            )
            self._value_shapes[length] = tuple(int(x) for x in shape)
            values = jax.tree.map(jnp.asarray, batch_arrays(constraints, self._value_shapes[length]))
            cons = ConstraintTables(skeleton=grammar.device_arrays(), values=values)
        temp = self.temperature if temperature is None else float(temperature)
        if (temp > 0) != (self.temperature > 0):
            raise ValueError("a call may change the temperature but not switch greedy <-> sampling")
        cache = self._cache(b, length + self.max_new_tokens)
        self._calls += 1
        tokens, cache = self._fn(
            self.state,
            self._rows(ids),
            self._rows(mask),
            jnp.asarray(positions, jnp.int32),
            jnp.asarray(next_pos, jnp.int32),
            features,
            cache,
            jax.random.fold_in(self._rng, self._calls),
            jnp.float32(max(temp, 1e-6)),
            jnp.float32(self.no_event_penalty),
            cons,
        )
        self._caches[(b, length + self.max_new_tokens)] = cache
        return Pending(tokens, len(prompts), self.eos_ids)

    def _rows(self, x: np.ndarray) -> jax.Array:
        """A [B, ...] host array, split over the data devices when the weights are on a mesh."""
        return jnp.asarray(x) if self._row_sharding is None else jax.device_put(x, self._row_sharding)

    def lower(self, prompt_len: int, image_tokens: int = 0):
        """`jax.jit(...).lower` of the prefill + decode loop for a full batch of `prompt_len`
        (a bucket) token prompts and `image_tokens` image-feature rows, greedy and without a
        grammar, from shapes alone: the weights may be abstract (AOT memory checks)."""
        b, d = self.batch_size, self._model_width

        def spec(shape, dtype, sharding=None):
            return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

        cache = jax.eval_shape(lambda: self._new_cache(b, prompt_len + self.max_new_tokens, self.cache_dtype))
        cache = jax.tree.map(lambda x: spec(x.shape, x.dtype, self._cache_sharding), cache)
        positions = jax.eval_shape(
            lambda: self.family.decode_positions(jnp.zeros((b,), jnp.int32))
        )  # the family's layout: [3, B, 1] (M-RoPE) or [B, 1]
        features = None
        if image_tokens:
            rows = -(-image_tokens // self.feature_multiple) * self.feature_multiple
            features = spec((rows, d), self.config.compute_dtype)
        return self._fn.lower(
            self.state,
            spec((b, prompt_len), jnp.int32, self._row_sharding),
            spec((b, prompt_len), jnp.int32, self._row_sharding),
            spec(positions.shape[:-1] + (prompt_len,), jnp.int32),
            spec((b,), jnp.int32),
            features,
            cache,
            self._rng,
            jnp.float32(1e-6),
            jnp.float32(0.0),
            None,
        )

    def generate(
        self, prompts: Sequence[Prompt], grammar: TaskGrammar | None = None, shape_hint: tuple[int, int] | None = None
    ) -> list[Generation]:
        """Generations for any number of prompts, in batches of batch_size (in order)."""
        pending = [
            self.submit(prompts[i : i + self.batch_size], grammar, shape_hint=shape_hint)
            for i in range(0, len(prompts), self.batch_size)
        ]
        return [g for p in pending for g in p.result()]
