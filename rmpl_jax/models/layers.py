"""Building blocks shared by the model families: parameters with logical axes, a LoRA-aware
Linear (optionally fused and stacked), RMSNorm and LayerNorm, embeddings, HF activations, SwiGLU MLP, rotary helpers,
attention through `jax.nn.dot_product_attention`, and a static KV cache for decoding.

Conventions
- Kernels are stored (in, out) like `x @ W`; torch stores (out, in).
- `stack=L` gives every parameter a leading 'layers' axis so a block of L identical layers is
  one module whose state `jax.lax.scan` walks (compile time independent of depth).
- Logical axis names live in the variable metadata under `out_sharding` (flax 0.12 renamed
  `sharding_names` to that); parameters are created with `eager_sharding=False`, so building a
  model needs no mesh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.core.spmd import get_logical_axis_rules
from jax.sharding import PartitionSpec

Axes = tuple[str | None, ...]


def make_param(value: jax.Array, axes: Axes, *, kind: type[nnx.Param] = nnx.Param) -> nnx.Param:
    """Wraps `value` as a parameter with logical axis names (one per dim, None for unnamed)."""
    if len(axes) != value.ndim:
        raise ValueError(f"{len(axes)} axis names {axes} for a parameter of shape {value.shape}")
    return kind(value, out_sharding=tuple(axes), eager_sharding=False)


def _stacked(shape: Sequence[int], axes: Axes, stack: int | None) -> tuple[tuple[int, ...], Axes]:
    if stack is None:
        return tuple(shape), tuple(axes)
    return (stack, *shape), ("layers", *axes)


def normal_init(rngs: nnx.Rngs, shape, dtype, std: float) -> jax.Array:
    return (std * jax.random.normal(rngs.params(), shape, jnp.float32)).astype(dtype)


class Linear(nnx.Module):
    """y = x @ W (+ b) with optional LoRA adapters, optionally fused and/or stacked.

    out_shape: the kernel's trailing dims (e.g. (2, mlp) for a fused gate/up); the kernel is
        (in, *out_shape) and the output's last dims are out_shape.
    segments: (name, size) pieces of the flattened output that stand for separate HF
        projections when several are fused (q/k/v, gate/up). LoRA adapters attach per segment
        so a fused layer trains exactly like PEFT's separate adapters. None: one unnamed segment.
    """

    def __init__(
        self,
        in_features: int,
        out_shape: int | Sequence[int],
        *,
        axes: Axes,
        use_bias: bool = False,
        segments: Sequence[tuple[str, int]] | None = None,
        stack: int | None = None,
        param_dtype=jnp.float32,
        dtype=jnp.float32,
        init_std: float = 0.02,
        rngs: nnx.Rngs,
    ):
        out_shape = (out_shape,) if isinstance(out_shape, int) else tuple(out_shape)
        if len(axes) != 1 + len(out_shape):
            raise ValueError(f"axes {axes} do not fit kernel ({in_features}, *{out_shape})")
        self.in_features = in_features
        self.out_shape = out_shape
        self.out_features = int(np.prod(out_shape))
        self.dtype = dtype
        self.stack = stack
        segs = tuple(segments) if segments is not None else ((None, self.out_features),)
        if sum(size for _, size in segs) != self.out_features:
            raise ValueError(f"segments {segs} do not add up to {self.out_features} outputs")
        self.segments = segs
        self.out_axis = axes[-1]
        shape, names = _stacked((in_features, *out_shape), axes, stack)
        self.kernel = make_param(normal_init(rngs, shape, param_dtype, init_std), names)
        if use_bias:
            shape, names = _stacked(out_shape, axes[1:], stack)
            self.bias = make_param(jnp.zeros(shape, param_dtype), names)
        else:
            self.bias = None
        self.lora_scale = 0.0
        self.lora_segments: tuple[str, ...] = ()

    # -- LoRA ---------------------------------------------------------------------------------
    @staticmethod
    def _lora_names(segment: str | None) -> tuple[str, str]:
        return ("lora_a", "lora_b") if segment is None else (f"lora_a_{segment}", f"lora_b_{segment}")

    def segment_slices(self) -> dict[str | None, tuple[int, int]]:
        """Flattened-output [start, stop) of each segment."""
        out, start = {}, 0
        for name, size in self.segments:
            out[name] = (start, start + size)
            start += size
        return out

    def add_lora(self, segment: str | None, rank: int, alpha: float, rngs: nnx.Rngs, param_dtype) -> None:
        """Attaches A (random, like PEFT's kaiming-uniform) and B (zero) for one segment."""
        if rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        scale = alpha / rank
        if self.lora_segments and not math.isclose(scale, self.lora_scale):
            raise ValueError("all adapters of one Linear must share alpha/rank")
        size = self.segment_slices()[segment]
        size = size[1] - size[0]
        bound = 1.0 / math.sqrt(self.in_features)
        a_shape, a_names = _stacked((self.in_features, rank), ("embed", "lora_rank"), self.stack)
        b_shape, b_names = _stacked((rank, size), ("lora_rank", self.out_axis), self.stack)
        a = jax.random.uniform(rngs.params(), a_shape, jnp.float32, -bound, bound).astype(param_dtype)
        a_name, b_name = self._lora_names(segment)
        setattr(self, a_name, make_param(a, a_names, kind=nnx.LoRAParam))
        setattr(self, b_name, make_param(jnp.zeros(b_shape, param_dtype), b_names, kind=nnx.LoRAParam))
        self.lora_scale = scale
        self.lora_segments = (*self.lora_segments, segment)

    def lora_segment_deltas(self):
        """Yields (start, stop, scale * A @ B in float32) per adapted segment, the delta of the
        flattened kernel columns [start, stop) — one segment at a time, to bound memory."""
        slices = self.segment_slices()
        for seg in self.lora_segments:
            start, stop = slices[seg]
            a_name, b_name = self._lora_names(seg)
            a = getattr(self, a_name)[...].astype(jnp.float32)
            b = getattr(self, b_name)[...].astype(jnp.float32)
            yield start, stop, self.lora_scale * (a @ b)

    def merge_lora(self) -> None:
        """Folds the adapters into the kernel (float32 sum, cast back) and removes them."""
        if not self.lora_segments:
            return
        kernel = self.kernel[...]
        flat = kernel.reshape(*kernel.shape[: -len(self.out_shape)], self.out_features)
        for start, stop, delta in self.lora_segment_deltas():
            merged = flat[..., start:stop].astype(jnp.float32) + delta
            flat = flat.at[..., start:stop].set(merged.astype(kernel.dtype))
        self.kernel.set_value(flat.reshape(kernel.shape))
        for seg in self.lora_segments:
            for name in self._lora_names(seg):
                delattr(self, name)
        self.lora_segments = ()
        self.lora_scale = 0.0

    # -- forward ------------------------------------------------------------------------------
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        kernel = self.kernel[...].astype(self.dtype)
        # The kernel as stored, (in, *out_shape): reshaping it inside the layer scan made the
        # backward pass keep a copy of every layer's kernel (a fused gate/up: 202 MiB a step
        # at SmolLM2-135M's size).
        out = "opqr"[: len(self.out_shape)]
        y = jnp.einsum(f"...i,i{out}->...{out}", x, kernel)
        if self.lora_segments:
            y = y + self.lora_forward(x).reshape(*y.shape[: y.ndim - len(out)], *self.out_shape).astype(y.dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y

    def lora_forward(self, x: jax.Array) -> jax.Array:
        """The adapters' contribution scale·(x A) B on the flattened output; segments without
        an adapter contribute zeros.

        Two matmuls for all segments: x times every A side by side, then times the B's on a
        block diagonal over the output columns of their segments. The backward pass then
        takes the output's gradient whole; per-segment products joined by a concatenation
        made XLA copy each segment's gradient transposed for its B's gradient.
        """
        slices = self.segment_slices()
        a_parts, b_parts = [], []
        for seg in self.lora_segments:
            a_name, b_name = self._lora_names(seg)
            a_parts.append(getattr(self, a_name)[...].astype(self.dtype))
            b_parts.append(getattr(self, b_name)[...].astype(self.dtype))
        xa = x @ (a_parts[0] if len(a_parts) == 1 else jnp.concatenate(a_parts, axis=-1))
        blocks = jnp.zeros((xa.shape[-1], self.out_features), self.dtype)
        row = 0
        for seg, b in zip(self.lora_segments, b_parts):
            start, _ = slices[seg]
            blocks = jax.lax.dynamic_update_slice(blocks, b, (row, start))
            row += b.shape[0]
        return self.lora_scale * (xa @ blocks)


class RMSNorm(nnx.Module):
    """RMSNorm over the last axis, normalised in float32.

    offset 0 (Qwen2/Llama): cast back to the compute dtype, then times `scale` (init 1).
    offset 1: times (1 + scale) in float32, then cast (init 0), as HF's norms of that kind.
    """

    def __init__(
        self,
        dim: int,
        *,
        eps: float,
        stack: int | None = None,
        param_dtype=jnp.float32,
        dtype=jnp.float32,
        axis_name: str = "norm",
        offset: float = 0.0,
    ):
        shape, names = _stacked((dim,), (axis_name,), stack)
        init = jnp.zeros if offset else jnp.ones
        self.scale = make_param(init(shape, param_dtype), names)
        self.eps = eps
        self.dtype = dtype
        self.offset = offset

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        if self.offset:
            return (normed * (self.offset + self.scale[...].astype(jnp.float32))).astype(self.dtype)
        return self.scale[...].astype(self.dtype) * normed.astype(self.dtype)


class LayerNorm(nnx.Module):
    """HF LayerNorm with weight and bias: statistics in float32, result in the input's dtype.
    `stack=L` gives both parameters a leading 'layers' axis (as `RMSNorm`)."""

    def __init__(self, dim: int, *, eps: float, stack: int | None = None, param_dtype=jnp.float32):
        shape, names = ((dim,), ("norm",)) if stack is None else ((stack, dim), ("layers", "norm"))
        self.scale = make_param(jnp.ones(shape, param_dtype), names)
        self.bias = make_param(jnp.zeros(shape, param_dtype), names)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        mean = xf.mean(-1, keepdims=True)
        var = jnp.square(xf - mean).mean(-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(x.dtype)


class Embed(nnx.Module):
    """Token embedding table [vocab, embed]; `attend` is the tied output projection (never
    scaled). `scale`: looked-up embeddings are multiplied by it (e.g. sqrt(embed))."""

    def __init__(
        self,
        vocab: int,
        dim: int,
        *,
        param_dtype=jnp.float32,
        dtype=jnp.float32,
        init_std: float = 0.02,
        scale: float | None = None,
        rngs: nnx.Rngs,
    ):
        self.embedding = make_param(normal_init(rngs, (vocab, dim), param_dtype, init_std), ("vocab", "embed"))
        self.dtype = dtype
        self.scale = scale

    def __call__(self, ids: jax.Array) -> jax.Array:
        x = jnp.take(self.embedding[...], ids, axis=0)
        if self.scale is not None:  # rounded to the table's dtype first, as HF's scaled embeddings
            x = x * jnp.asarray(self.scale, x.dtype)
        return x.astype(self.dtype)

    def attend(self, h: jax.Array, out_dtype=jnp.float32) -> jax.Array:
        table = self.embedding[...].astype(self.dtype)
        return jnp.einsum("...d,vd->...v", h.astype(self.dtype), table, preferred_element_type=out_dtype)


class SwiGLU(nnx.Module):
    """down(act(gate(x)) * up(x)), act SiLU unless `activation` names another of
    `ACTIVATIONS` (e.g. tanh GELU); gate and up fused into one (embed, 2, mlp) kernel if asked."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        *,
        fused: bool = True,
        use_bias: bool = False,
        stack: int | None = None,
        param_dtype=jnp.float32,
        dtype=jnp.float32,
        init_std: float = 0.02,
        activation: str = "silu",
        rngs: nnx.Rngs,
    ):
        kw = dict(stack=stack, param_dtype=param_dtype, dtype=dtype, init_std=init_std, use_bias=use_bias, rngs=rngs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} not in {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.fused = fused
        if fused:
            self.gate_up_proj = Linear(
                dim,
                (2, hidden),
                axes=("embed", None, "mlp"),
                segments=(("gate_proj", hidden), ("up_proj", hidden)),
                **kw,
            )
        else:
            self.gate_proj = Linear(dim, hidden, axes=("embed", "mlp"), **kw)
            self.up_proj = Linear(dim, hidden, axes=("embed", "mlp"), **kw)
        self.down_proj = Linear(hidden, dim, axes=("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.fused:
            gu = self.gate_up_proj(x)
            gate, up = gu[..., 0, :], gu[..., 1, :]
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(ACTIVATIONS[self.activation](gate) * up)


# -- activations ----------------------------------------------------------------------------------
# HF `hidden_act` names: QuickGELU (CLIP, Qwen2-VL's tower), exact and tanh GELU, SiLU.
ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
}


# -- rotary -------------------------------------------------------------------------------------
def rope_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """1 / theta^(2i/d), i < d/2, as float32 (computed in float64 first)."""
    return (1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)).astype(np.float32)


def rope_cos_sin(position_ids: jax.Array, inv_freq: np.ndarray):
    """Rotary tables of 1-D positions [B, T] -> cos, sin [B, T, head_dim] in float32 (the
    frequencies of each half repeated, HF's rotate-half layout)."""
    freqs = position_ids.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def mrope_cos_sin(position_ids: jax.Array, inv_freq: np.ndarray, mrope_section: Sequence[int]):
    """Multimodal RoPE tables. position_ids [3, B, T] (temporal, height, width) -> cos, sin
    [B, T, head_dim] in float32: frequency band i uses the position component i % 3 of the
    band list `mrope_section` (HF's recomposition), then the half is repeated."""
    if sum(mrope_section) != inv_freq.shape[0]:
        raise ValueError(f"mrope_section {tuple(mrope_section)} must sum to head_dim/2={inv_freq.shape[0]}")
    comp = np.concatenate([np.full(n, i % 3) for i, n in enumerate(mrope_section)])
    pos = position_ids.astype(jnp.float32)  # [3, B, T]
    # Pick the component per frequency before multiplying: [B, T, d/2].
    pos_sel = jnp.moveaxis(pos[comp], 0, -1)
    freqs = pos_sel * jnp.asarray(inv_freq)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x [B, T, N, H] rotated by cos/sin [B, T, H] (rotate-half convention), in float32."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    out = x32 * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return out.astype(x.dtype)


# -- activation sharding ------------------------------------------------------------------------
def constrain_batch(x: jax.Array) -> jax.Array:
    """`x` [B, ...] kept split by example over the mesh axes of the logical `batch` axis (the
    rules `train.sharding.activate` sets); a no-op without rules or mesh, or when those axes
    do not divide B. Without it the partitioner may follow the fsdp-sharded weights and run
    every example on every device (memory growing with the global batch)."""
    axes = dict(get_logical_axis_rules() or ()).get("batch")
    mesh = jax.sharding.get_abstract_mesh()
    if not axes or mesh.empty:
        return x
    axes = tuple(a for a in ((axes,) if isinstance(axes, str) else axes) if mesh.shape.get(a, 1) > 1)
    if not axes or x.shape[0] % math.prod(mesh.shape[a] for a in axes):
        return x
    return jax.lax.with_sharding_constraint(x, PartitionSpec(axes, *([None] * (x.ndim - 1))))


# -- attention ----------------------------------------------------------------------------------
def causal_padding_mask(attention_mask: jax.Array | None, q_len: int, kv_len: int | None = None):
    """Boolean [B, 1, Tq, Tk] mask (True = attend): causal and, when given, key padding.
    Returns None when there is no padding (callers then use is_causal=True)."""
    if attention_mask is None:
        return None
    kv_len = q_len if kv_len is None else kv_len
    causal = jnp.tril(jnp.ones((q_len, kv_len), bool), k=kv_len - q_len)
    keys = attention_mask.astype(bool)[:, None, None, :]
    return causal[None, None] & keys


def attention(q, k, v, *, mask=None, is_causal: bool = False, implementation: str | None = None, scale=None):
    """Grouped-query attention, [B, T, N, H] x [B, S, K, H] -> [B, T, N, H]; scores times
    `scale` (None: 1/sqrt(H)).

    `mask`: a [B, 1, T, S] bool mask, or int [B] key lengths of a right-padded batch (causal
    attention over the first n keys: no [B, 1, T, S] mask is built; cuDNN takes the lengths
    natively). is_causal adds the causal triangle without a materialised mask.
    `implementation` is passed to `jax.nn.dot_product_attention` (None = XLA, 'cudnn' on GPU).
    """
    if mask is not None and mask.ndim == 1:
        return jax.nn.dot_product_attention(
            q,
            k,
            v,
            scale=scale,
            is_causal=True,
            key_value_seq_lengths=mask.astype(jnp.int32),
            implementation=implementation,
        )
    return jax.nn.dot_product_attention(
        q, k, v, mask=mask, scale=scale, is_causal=is_causal, implementation=implementation
    )


# -- KV cache -----------------------------------------------------------------------------------
class KVCache(NamedTuple):
    """Static-shaped key/value cache of a stack of layers: k, v [layers, B, kv_heads, S, head_dim].

    Slot s of every row holds the key/value of the token the decode loop placed there; rows are
    left-padded, so one slot index is written for the whole batch at each step. A NamedTuple is
    a pytree: it passes through jit, scan and while_loop, and can be donated.
    """

    k: jax.Array
    v: jax.Array

    @property
    def max_len(self) -> int:
        return int(self.k.shape[3])


def init_kv_cache(
    num_layers: int, batch: int, num_kv_heads: int, max_len: int, head_dim: int, dtype=jnp.bfloat16
) -> KVCache:
    """A zero cache (zeros, not garbage: masked slots are multiplied by 0 and must be finite)."""
    shape = (num_layers, batch, num_kv_heads, max_len, head_dim)
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def write_kv(cache: jax.Array, layer, new: jax.Array, slot) -> jax.Array:
    """Writes new [B, T, K, H] into cache [L, B, K, S, H] at (layer, slots slot..slot+T-1);
    an in-place dynamic_update_slice when the cache is a loop carry."""
    update = jnp.swapaxes(new, 1, 2)[None].astype(cache.dtype)
    zero = jnp.zeros((), jnp.int32)
    return jax.lax.dynamic_update_slice(
        cache, update, (jnp.asarray(layer, jnp.int32), zero, zero, jnp.asarray(slot, jnp.int32), zero)
    )


def cached_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array, slot, *, scale=None, window=None
) -> jax.Array:
    """Attention of T new queries over one layer's cache.

    q [B, T, N, H] (query t sits in slot `slot + t`); k, v [B, K, S, H] with the new keys already
    written; key_mask [B, S] bool marks slots holding real tokens. A query attends to valid slots
    up to its own; with `window` (a traced int, 0 = none) only to the last `window` slots up to
    its own (a sliding-window layer). GQA: query head n uses kv head n // (N // K), as HF's
    repeat_kv. Scores times `scale` (None: 1/sqrt(H)); softmax in float32. Returns [B, T, N, H]
    in q's dtype.
    """
    b, t, n, h = q.shape
    kv = k.shape[1]
    s = k.shape[2]
    qg = q.reshape(b, t, kv, n // kv, h)
    scores = jnp.einsum("btkgh,bksh->bkgts", qg, k, preferred_element_type=jnp.float32)
    scores = scores * (1.0 / math.sqrt(h) if scale is None else scale)
    query_slot = jnp.arange(t)[:, None] + slot
    own = query_slot >= jnp.arange(s)[None, :]  # [T, S] causal within the chunk
    if window is not None:
        own = own & ((window <= 0) | (jnp.arange(s)[None, :] > query_slot - window))
    allowed = key_mask[:, None, None, None, :] & own[None, None, None]
    scores = jnp.where(allowed, scores, -jnp.inf)
    probs = jax.nn.softmax(scores, axis=-1)
    probs = jnp.where(allowed, probs, 0.0)  # rows with no valid slot give zeros, not NaN
    out = jnp.einsum("bkgts,bksh->btkgh", probs.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return out.reshape(b, t, n, h).astype(q.dtype)


def variables_by_path(module: nnx.Module, kind: type[nnx.Variable] = nnx.Param) -> dict[str, nnx.Variable]:
    """The module's own variables of `kind` keyed by '/'-joined path (e.g. 'layers/mlp/...')."""
    out = {}
    for path, node in nnx.iter_graph(module):
        if isinstance(node, kind):
            out["/".join(str(p) for p in path)] = node
    return out


def modules_by_path(module: nnx.Module, kind: type[nnx.Module]) -> dict[str, nnx.Module]:
    """Sub-modules of type `kind` keyed by '/'-joined path."""
    return {"/".join(str(p) for p in path): node for path, node in nnx.iter_graph(module) if isinstance(node, kind)}
