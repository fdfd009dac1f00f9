"""The pre-norm decoder-only language model every family's LM runs on: token
embedding, scanned layers (GQA self-attention + a gated MLP, each after an RMSNorm), final
norm, a tied or separate LM head, and KV-cache decoding.

A family's model subclasses `DecoderLM`, builds the parts with `init_decoder` and supplies
the rotary tables of its position ids (`cos_sin`): 1-D rotary for Llama, M-RoPE for Qwen2-VL.
Everything else — the layer scan, prefill, the decode step, the logits — lives here once.

Settings of `DecoderDims`, each off by default, cover what differs between families without
a branch on a family: norms times (1 + scale); RMSNorm over each head's q and k; "sandwich"
norms after attention and MLP as well as before; the MLP's activation; the attention scale;
scaled embeddings; and sliding-window layers (`layer_sliding`), which attend to the last
`sliding_window` keys and take their own rotary tables (`sliding_cos_sin`). The scan carries
a flag per layer and selects that layer's tables and mask, so mixed stacks stay one scan.
`block_ids` make runs of tokens (a photo's image tokens) attend to each other both ways.

Parameter paths (what name tables and LoRA regexes see): `embed_tokens/embedding`,
`layers/{input_layernorm,post_attention_layernorm}/scale` (with sandwich norms also
`layers/{pre,post}_feedforward_layernorm/scale`), `layers/self_attn/{qkv_proj | q_proj,
k_proj, v_proj}`, `layers/self_attn/{q_norm,k_norm}/scale` (QK-norm), `layers/self_attn/o_proj`,
`layers/mlp/{gate_up_proj | gate_proj, up_proj}`, `layers/mlp/down_proj`, `norm/scale`,
`lm_head` (untied only).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.layers import (
    Embed,
    KVCache,
    Linear,
    RMSNorm,
    SwiGLU,
    apply_rope,
    attention,
    cached_attention,
    causal_padding_mask,
    constrain_batch,
    init_kv_cache,
    write_kv,
)
from rmpl_jax.models.segments import bidirectional_blocks, segment_causal_mask

# Every attention and MLP projection of the decoder: the default LoRA targets of a text LM.
DECODER_PROJECTIONS = r"^layers/(self_attn/(q|k|v|o)_proj|mlp/(gate|up|down)_proj)$"

_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
REMAT_POLICIES = (None, *_REMAT_POLICIES)


@dataclasses.dataclass(frozen=True)
class DecoderDims:
    """Sizes and options of the decoder stack, taken from a family's config.

    qkv_bias / o_bias / mlp_bias: biases on q/k/v, on o_proj, on the MLP projections
    (Qwen2: q/k/v only; Llama: `attention_bias` for all four, `mlp_bias`).
    dtype / param_dtype: compute and storage dtypes (numpy dtype objects).
    norm_offset: RMSNorms multiply by (norm_offset + scale) (1 or 0). qk_norm: RMSNorm over
    each head's q and k before rotary. sandwich_norms: attention and MLP outputs are normed
    before the residual add, and the MLP input has its own norm.
    mlp_activation: the gate's activation (`layers.ACTIVATIONS`). attention_scale: the score
    scale (None: head_dim ** -0.5). embed_scale: embeddings times this (e.g. sqrt(hidden)).
    sliding_window / layer_sliding: per layer, True = attends only to the last
    `sliding_window` keys (its own query included) with the `sliding_cos_sin` rotary tables.
    """

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    initializer_range: float
    dtype: jnp.dtype
    param_dtype: jnp.dtype
    fuse_qkv: bool = True
    fuse_gate_up: bool = True
    attention_impl: str | None = None
    remat_policy: str | None = None
    norm_offset: float = 0.0
    qk_norm: bool = False
    sandwich_norms: bool = False
    mlp_activation: str = "silu"
    attention_scale: float | None = None
    embed_scale: float | None = None
    sliding_window: int | None = None
    layer_sliding: tuple[bool, ...] = ()

    @property
    def has_sliding(self) -> bool:
        return any(self.layer_sliding)

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")
        if self.mlp_bias and self.fuse_gate_up:
            raise ValueError("mlp_bias needs fuse_gate_up=False (a fused gate/up bias has no HF name table)")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy {self.remat_policy!r} not in {REMAT_POLICIES}")
        if self.layer_sliding and len(self.layer_sliding) != self.num_layers:
            raise ValueError(f"layer_sliding has {len(self.layer_sliding)} flags for {self.num_layers} layers")
        if self.has_sliding and not (self.sliding_window or 0) > 0:
            raise ValueError(f"sliding layers need a positive sliding_window, got {self.sliding_window}")

    def norm(self, dim: int, stack: int | None = None) -> RMSNorm:
        """An RMSNorm of this stack's kind over `dim`."""
        return RMSNorm(
            dim,
            eps=self.rms_norm_eps,
            stack=stack,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            offset=self.norm_offset,
        )


class Attention(nnx.Module):
    """GQA self-attention with rotary q/k; q/k/v fused into one matmul when asked."""

    def __init__(self, dims: DecoderDims, *, stack: int | None, rngs: nnx.Rngs):
        d, n, k, h = dims.hidden_size, dims.num_heads, dims.num_kv_heads, dims.head_dim
        kw = dict(
            stack=stack,
            param_dtype=dims.param_dtype,
            dtype=dims.dtype,
            init_std=dims.initializer_range,
            rngs=rngs,
        )
        self.num_heads, self.num_kv_heads, self.head_dim = n, k, h
        self.scale = dims.attention_scale
        self.fused = dims.fuse_qkv
        self.impl = dims.attention_impl
        bias = dims.qkv_bias
        if self.fused:
            self.qkv_proj = Linear(
                d,
                (n + 2 * k) * h,
                axes=("embed", "q_heads"),
                use_bias=bias,
                segments=(("q_proj", n * h), ("k_proj", k * h), ("v_proj", k * h)),
                **kw,
            )
        else:
            self.q_proj = Linear(d, n * h, axes=("embed", "q_heads"), use_bias=bias, **kw)
            self.k_proj = Linear(d, k * h, axes=("embed", "kv_heads"), use_bias=bias, **kw)
            self.v_proj = Linear(d, k * h, axes=("embed", "kv_heads"), use_bias=bias, **kw)
        self.o_proj = Linear(n * h, d, axes=("q_heads", "embed"), use_bias=dims.o_bias, **kw)
        if dims.qk_norm:
            self.q_norm, self.k_norm = dims.norm(h, stack), dims.norm(h, stack)
        else:
            self.q_norm = self.k_norm = None

    def qkv(self, x: jax.Array, cos: jax.Array, sin: jax.Array):
        """Projected and rotated q [B,T,N,H], k and v [B,T,K,H] (a KV cache stores k, v)."""
        b, t, _ = x.shape
        n, k, h = self.num_heads, self.num_kv_heads, self.head_dim
        if self.fused:
            qkv = self.qkv_proj(x)
            q, key, v = qkv[..., : n * h], qkv[..., n * h : (n + k) * h], qkv[..., (n + k) * h :]
        else:
            q, key, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q, key = q.reshape(b, t, n, h), key.reshape(b, t, k, h)
        if self.q_norm is not None:
            q, key = self.q_norm(q), self.k_norm(key)
        return apply_rope(q, cos, sin), apply_rope(key, cos, sin), v.reshape(b, t, k, h)

    def forward_kv(self, x, cos, sin, mask):
        """Self-attention over x itself; also returns the rotated k and v [B,T,K,H] (prefill)."""
        q, k, v = self.qkv(x, cos, sin)
        out = attention(q, k, v, mask=mask, is_causal=mask is None, implementation=self.impl, scale=self.scale)
        return self.o_proj(out.reshape(*x.shape[:2], -1)), k, v

    def __call__(self, x, cos, sin, mask):
        return self.forward_kv(x, cos, sin, mask)[0]

    def decode(self, x, cos, sin, cache: KVCache, layer, slot, key_mask, window=None):
        """New tokens x [B,T,D] in slots slot..slot+T-1: writes their k/v into `cache` at `layer`
        and attends over that layer's cache (the last `window` slots when it is positive).
        Returns (out [B,T,D], cache)."""
        q, k, v = self.qkv(x, cos, sin)
        ck, cv = write_kv(cache.k, layer, k, slot), write_kv(cache.v, layer, v, slot)
        lk = jax.lax.dynamic_index_in_dim(ck, layer, 0, keepdims=False)
        lv = jax.lax.dynamic_index_in_dim(cv, layer, 0, keepdims=False)
        out = cached_attention(q, lk, lv, key_mask, slot, scale=self.scale, window=window)
        return self.o_proj(out.reshape(*x.shape[:2], -1)), KVCache(ck, cv)


class DecoderLayer(nnx.Module):
    """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x)). With sandwich norms (HF's names):
    x + post_attention_layernorm(attn(input_layernorm(x))); then
    x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))."""

    def __init__(self, dims: DecoderDims, *, stack: int | None, rngs: nnx.Rngs):
        d = dims.hidden_size
        self.input_layernorm = dims.norm(d, stack)
        self.self_attn = Attention(dims, stack=stack, rngs=rngs)
        self.post_attention_layernorm = dims.norm(d, stack)
        self.sandwich = dims.sandwich_norms
        if self.sandwich:
            self.pre_feedforward_layernorm = dims.norm(d, stack)
            self.post_feedforward_layernorm = dims.norm(d, stack)
        self.mlp = SwiGLU(
            dims.hidden_size,
            dims.intermediate_size,
            fused=dims.fuse_gate_up,
            use_bias=dims.mlp_bias,
            stack=stack,
            param_dtype=dims.param_dtype,
            dtype=dims.dtype,
            init_std=dims.initializer_range,
            activation=dims.mlp_activation,
            rngs=rngs,
        )

    def _residual(self, x, attn_out):
        """The block after attention: both residual adds and the MLP."""
        if self.sandwich:
            x = x + self.post_attention_layernorm(attn_out)
            return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        x = x + attn_out
        return x + self.mlp(self.post_attention_layernorm(x))

    def __call__(self, x, cos, sin, mask):
        return self._residual(x, self.self_attn(self.input_layernorm(x), cos, sin, mask))

    def prefill(self, x, cos, sin, mask, cache: KVCache, layer):
        """As __call__, and writes this layer's k/v of the whole prompt into slots 0..T-1."""
        out, k, v = self.self_attn.forward_kv(self.input_layernorm(x), cos, sin, mask)
        cache = KVCache(write_kv(cache.k, layer, k, 0), write_kv(cache.v, layer, v, 0))
        return self._residual(x, out), cache

    def decode(self, x, cos, sin, cache: KVCache, layer, slot, key_mask, window=None):
        out, cache = self.self_attn.decode(self.input_layernorm(x), cos, sin, cache, layer, slot, key_mask, window)
        return self._residual(x, out), cache


class DecoderLM(nnx.Module):
    """Base of a family's causal LM; see the module docstring. Subclasses call `init_decoder`
    in their constructor and implement `cos_sin(position_ids) -> (cos, sin) [B, T, head_dim]`."""

    dims: DecoderDims

    def init_decoder(self, dims: DecoderDims, vocab_size: int, tie_word_embeddings: bool, rngs: nnx.Rngs) -> None:
        """Creates embed_tokens, layers, norm and lm_head (in that order: random init draws
        from `rngs` in creation order)."""
        self.dims = dims
        self.embed_tokens = Embed(
            vocab_size,
            dims.hidden_size,
            param_dtype=dims.param_dtype,
            dtype=dims.dtype,
            init_std=dims.initializer_range,
            scale=dims.embed_scale,
            rngs=rngs,
        )
        self.layers = DecoderLayer(dims, stack=dims.num_layers, rngs=rngs)
        self.norm = dims.norm(dims.hidden_size)
        if tie_word_embeddings:
            self.lm_head = None
        else:
            self.lm_head = Linear(
                dims.hidden_size,
                vocab_size,
                axes=("embed", "vocab"),
                param_dtype=dims.param_dtype,
                dtype=dims.dtype,
                init_std=dims.initializer_range,
                rngs=rngs,
            )

    def cos_sin(self, position_ids) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def sliding_cos_sin(self, position_ids) -> tuple[jax.Array, jax.Array]:
        """Rotary tables of the sliding-window layers (default: the same as every layer's)."""
        return self.cos_sin(position_ids)

    # -- per-layer settings ---------------------------------------------------------------------
    def _layer_flags(self) -> jax.Array | None:
        """[L] bool, True for a sliding-window layer; None when no layer slides."""
        return jnp.asarray(self.dims.layer_sliding, bool) if self.dims.has_sliding else None

    @staticmethod
    def _pick(flag, sliding, full):
        """The sliding or the full-attention value of a pytree, by a traced per-layer flag."""
        if flag is None:
            return full
        return jax.tree.map(lambda a, b: jnp.where(flag, a, b), sliding, full)

    def _attention_inputs(self, position_ids, mask):
        """(full, sliding) pairs of (cos, sin, mask); sliding is None when no layer slides.
        `mask` must then be a [B, 1, T, S] bool mask of prompt tokens in slots 0..S-1."""
        cos, sin = self.cos_sin(position_ids)
        if not self.dims.has_sliding:
            return (cos, sin, mask), None
        lcos, lsin = self.sliding_cos_sin(position_ids)
        t, s = mask.shape[-2:]
        query = jnp.arange(t)[:, None] + (s - t)
        band = jnp.arange(s)[None, :] > query - self.dims.sliding_window
        return (cos, sin, mask), (lcos, lsin, mask & band)

    # -- trunk ----------------------------------------------------------------------------------
    def run_layers(self, x, full, sliding=None) -> jax.Array:
        """All decoder layers with one `jax.lax.scan` over the stacked parameters; `full` and
        `sliding`: the (cos, sin, mask) of each kind of layer (`_attention_inputs`)."""
        graphdef, state = nnx.split(self.layers)

        def body(h, xs):
            layer_state, flag = xs
            cos, sin, mask = self._pick(flag, sliding, full)
            layer = nnx.merge(graphdef, layer_state)
            return constrain_batch(layer(constrain_batch(h), cos, sin, mask)), None

        policy = self.dims.remat_policy
        if policy is not None:
            body = jax.checkpoint(body, policy=_REMAT_POLICIES[policy], prevent_cse=False)
        x, _ = jax.lax.scan(body, x, (state, self._layer_flags()))
        return x

    def _prompt_mask(self, attention_mask, t: int, *, right_padded=False, segment_ids=None, block_ids=None):
        """The attention mask of a whole sequence: None (causal), int key lengths [B] or bool
        [B, 1, T, T]; always the latter when layers slide or runs attend both ways."""
        full_mask = self.dims.has_sliding or block_ids is not None
        if segment_ids is not None:
            mask = segment_causal_mask(segment_ids)
        elif right_padded and attention_mask is not None and not full_mask:
            return jnp.sum(attention_mask.astype(jnp.int32), axis=-1)
        else:
            mask = causal_padding_mask(attention_mask, t)
        if mask is None and full_mask:
            mask = jnp.tril(jnp.ones((t, t), bool))[None, None]
        if block_ids is not None:
            mask = mask | bidirectional_blocks(block_ids)
        return mask

    def hidden_from_embeds(
        self,
        inputs_embeds,
        *,
        position_ids,
        attention_mask=None,
        right_padded=False,
        segment_ids=None,
        block_ids=None,
    ) -> jax.Array:
        """Final-norm hidden states [B, T, D] of embedded inputs. `right_padded`: the padding
        of `attention_mask` is at the end of each row (training batches): attention is causal
        over each row's key length instead of a [B, 1, T, T] mask. `segment_ids` [B, T]: a
        packed batch (`models/segments.py`), attention block-diagonal causal per example.
        `block_ids` [B, T]: tokens of one run (id >= 0) also see each other's later tokens."""
        mask = self._prompt_mask(
            attention_mask,
            inputs_embeds.shape[1],
            right_padded=right_padded,
            segment_ids=segment_ids,
            block_ids=block_ids,
        )
        return self.norm(self.run_layers(inputs_embeds, *self._attention_inputs(position_ids, mask)))

    def logits_from_hidden(self, h: jax.Array) -> jax.Array:
        """[.., D] -> [.., V] float32 logits (matmul in the compute dtype, f32 accumulation)."""
        if self.lm_head is None:
            return self.embed_tokens.attend(h)
        h = h.astype(self.dims.dtype)
        kernel = self.lm_head.kernel[...].astype(self.dims.dtype)
        logits = jnp.einsum("...d,dv->...v", h, kernel, preferred_element_type=jnp.float32)
        if self.lm_head.lora_segments:  # an adapter on the head (not in the default targets)
            logits = logits + self.lm_head.lora_forward(h).astype(jnp.float32)
        return logits

    # -- KV-cache decoding ----------------------------------------------------------------------
    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache:
        """A zero KV cache [layers, batch, kv_heads, max_len, head_dim] (default: compute dtype)."""
        d = self.dims
        return init_kv_cache(d.num_layers, batch, d.num_kv_heads, max_len, d.head_dim, dtype or d.dtype)

    def _scan_cached(self, x, cache: KVCache, step):
        """Runs `step(layer, h, cache, index, flag) -> (h, cache)` over the stacked layers with
        one scan (flag: the layer's sliding flag, None when none slides); the cache rides in the
        carry so each layer's write is an in-place update."""
        graphdef, state = nnx.split(self.layers)

        def body(carry, xs):
            layer_state, index, flag = xs
            h, c = step(nnx.merge(graphdef, layer_state), *carry, index, flag)
            return (h, c), None

        index = jnp.arange(self.dims.num_layers, dtype=jnp.int32)
        (x, cache), _ = jax.lax.scan(body, (x, cache), (state, index, self._layer_flags()))
        return x, cache

    def prefill_embeds(self, inputs_embeds, *, attention_mask, position_ids, cache: KVCache, block_ids=None):
        """Runs a left-padded embedded prompt batch [B, P, D], fills cache slots 0..P-1 and
        returns (float32 logits [B, V] of the last position, cache); `block_ids` as in
        `hidden_from_embeds`."""
        mask = self._prompt_mask(attention_mask, inputs_embeds.shape[1], block_ids=block_ids)
        full, sliding = self._attention_inputs(position_ids, mask)

        def step(layer, h, c, i, flag):
            return layer.prefill(h, *self._pick(flag, sliding, full), c, i)

        x, cache = self._scan_cached(inputs_embeds, cache, step)
        return self.logits_from_hidden(self.norm(x[:, -1])), cache

    def decode_step(self, tokens, *, position_ids, cache: KVCache, slot, key_mask):
        """tokens [B, T] placed in slots slot..slot+T-1 (position_ids as the family's hooks
        give them); key_mask [B, S] marks valid slots (these included). A sliding-window layer
        attends to its last `sliding_window` slots only. Returns (float32 logits [B, T, V], cache)."""
        x = self.embed_tokens(tokens)
        if self.dims.has_sliding:  # window 0: a full-attention layer
            full = (*self.cos_sin(position_ids), jnp.int32(0))
            sliding = (*self.sliding_cos_sin(position_ids), jnp.int32(self.dims.sliding_window))
        else:
            full, sliding = (*self.cos_sin(position_ids), None), None

        def step(layer, h, c, i, flag):
            cos, sin, window = self._pick(flag, sliding, full)
            return layer.decode(h, cos, sin, c, i, slot, key_mask, window)

        x, cache = self._scan_cached(x, cache, step)
        return self.logits_from_hidden(self.norm(x)), cache


def decoder_name_rules(dims: DecoderDims, tie_word_embeddings: bool, prefix: str = "model.") -> list[NameRule]:
    """HF tensor names of a decoder (`{prefix}layers.N...`,
    `{prefix}embed_tokens`, `{prefix}norm`, `lm_head`) <-> the leaves of `DecoderLM`."""
    n, k, i = dims.num_heads * dims.head_dim, dims.num_kv_heads * dims.head_dim, dims.intermediate_size
    p = prefix.replace(".", r"\.")
    L = p + r"layers\.(?P<layer>\d+)\."
    rules = [
        NameRule(p + r"embed_tokens\.weight", "embed_tokens/embedding"),
        NameRule(p + r"norm\.weight", "norm/scale"),
        NameRule(L + r"input_layernorm\.weight", "layers/input_layernorm/scale"),
        NameRule(L + r"post_attention_layernorm\.weight", "layers/post_attention_layernorm/scale"),
        NameRule(L + r"self_attn\.o_proj\.weight", "layers/self_attn/o_proj/kernel", transpose=True),
        NameRule(L + r"mlp\.down_proj\.weight", "layers/mlp/down_proj/kernel", transpose=True),
    ]
    if dims.sandwich_norms:
        for norm in ("pre_feedforward_layernorm", "post_feedforward_layernorm"):
            rules.append(NameRule(L + norm + r"\.weight", f"layers/{norm}/scale"))
    if dims.qk_norm:
        for norm in ("q_norm", "k_norm"):
            rules.append(NameRule(L + rf"self_attn\.{norm}\.weight", f"layers/self_attn/{norm}/scale"))
    if dims.o_bias:
        rules.append(NameRule(L + r"self_attn\.o_proj\.bias", "layers/self_attn/o_proj/bias"))
    if dims.mlp_bias:
        rules.append(NameRule(L + r"mlp\.down_proj\.bias", "layers/mlp/down_proj/bias"))
    if not tie_word_embeddings:
        rules.append(NameRule(r"lm_head\.weight", "lm_head/kernel", transpose=True))
    spans = {"q_proj": (0, n), "k_proj": (n, n + k), "v_proj": (n + k, n + 2 * k)}
    kinds = ("weight", "bias") if dims.qkv_bias else ("weight",)
    for proj, span in spans.items():
        for kind in kinds:
            leaf = "kernel" if kind == "weight" else "bias"
            hf = L + rf"self_attn\.{proj}\.{kind}"
            if dims.fuse_qkv:
                rules.append(
                    NameRule(hf, f"layers/self_attn/qkv_proj/{leaf}", transpose=kind == "weight", last_axis_slice=span)
                )
            else:
                rules.append(NameRule(hf, f"layers/self_attn/{proj}/{leaf}", transpose=kind == "weight"))
    for idx, proj in enumerate(("gate_proj", "up_proj")):
        hf = L + rf"mlp\.{proj}\."
        if dims.fuse_gate_up:  # never with mlp_bias (DecoderDims refuses it)
            span = (idx * i, (idx + 1) * i)
            rules.append(
                NameRule(hf + "weight", "layers/mlp/gate_up_proj/kernel", transpose=True, last_axis_slice=span)
            )
        else:
            rules.append(NameRule(hf + "weight", f"layers/mlp/{proj}/kernel", transpose=True))
            if dims.mlp_bias:
                rules.append(NameRule(hf + "bias", f"layers/mlp/{proj}/bias"))
    return rules
