"""Qwen2-VL / Qwen2.5-VL in Flax NNX: Qwen2 language model with M-RoPE, image features
scattered into the image-placeholder positions, and the HF name table.

The decoder layers are one stacked module (every parameter has a leading 'layers' axis) run
with `jax.lax.scan`, so compile time does not grow with depth. Q/K/V and gate/up are fused
into single matmuls; LoRA adapters stay per HF projection (see `common.Linear`).

Forward inputs (all static shapes):
  input_ids [B, T] int; attention_mask [B, T] (1 = token, 0 = padding; left or right).
    Right-padded batches may pass attention_mask=None: valid tokens never attend to later
    padding, so their logits are the same and attention runs with is_causal, no mask;
  position_ids [3, B, T] (optional: computed from input_ids and the grid with the HF rule);
  pixel_values [n_patches, C*t*p*p] with image_grid_thw a static numpy [n_images, 3]
  (run through the vision tower), or image_features [n_image_tokens, hidden] precomputed.

Decoding (rmpl_jax/decode.py): `init_cache`, `prefill` (a left-padded prompt batch fills KV
cache slots 0..P-1, returns the last position's logits) and `decode_step` (new tokens in the
next slots attend over the cache). The cache [layers, B, kv_heads, S, head_dim] rides in the
carry of the layer scan, so each layer's write is an in-place dynamic_update_slice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

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
    init_kv_cache,
    mrope_cos_sin,
    rope_inv_freq,
    write_kv,
)
from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig
from rmpl_jax.models.qwen2_vl.mrope import (
    check_image_tokens,
    mrope_position_ids,
    text_position_ids,
)
from rmpl_jax.models.qwen2_vl.vision import VisionTower

VISION_ATTR = "visual"


class Attention(nnx.Module):
    """GQA self-attention with q/k/v biases and M-RoPE."""

    def __init__(self, cfg: Qwen2VLConfig, *, stack: int | None, rngs: nnx.Rngs):
        d, n, k, h = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        kw = dict(
            stack=stack,
            param_dtype=cfg.weight_dtype,
            dtype=cfg.compute_dtype,
            init_std=cfg.initializer_range,
            rngs=rngs,
        )
        self.num_heads, self.num_kv_heads, self.head_dim = n, k, h
        self.fused = cfg.fuse_qkv
        self.impl = cfg.attention_impl
        if self.fused:
            self.qkv_proj = Linear(
                d,
                (n + 2 * k) * h,
                axes=("embed", "q_heads"),
                use_bias=True,
                segments=(("q_proj", n * h), ("k_proj", k * h), ("v_proj", k * h)),
                **kw,
            )
        else:
            self.q_proj = Linear(d, n * h, axes=("embed", "q_heads"), use_bias=True, **kw)
            self.k_proj = Linear(d, k * h, axes=("embed", "kv_heads"), use_bias=True, **kw)
            self.v_proj = Linear(d, k * h, axes=("embed", "kv_heads"), use_bias=True, **kw)
        self.o_proj = Linear(n * h, d, axes=("q_heads", "embed"), **kw)

    def qkv(self, x: jax.Array, cos: jax.Array, sin: jax.Array):
        """Projected and rotated q [B,T,N,H], k and v [B,T,K,H] (a KV cache stores k, v)."""
        b, t, _ = x.shape
        n, k, h = self.num_heads, self.num_kv_heads, self.head_dim
        if self.fused:
            qkv = self.qkv_proj(x)
            q, key, v = qkv[..., : n * h], qkv[..., n * h : (n + k) * h], qkv[..., (n + k) * h :]
        else:
            q, key, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = apply_rope(q.reshape(b, t, n, h), cos, sin)
        key = apply_rope(key.reshape(b, t, k, h), cos, sin)
        return q, key, v.reshape(b, t, k, h)

    def forward_kv(self, x, cos, sin, mask):
        """Self-attention over x itself; also returns the rotated k and v [B,T,K,H] (prefill)."""
        q, k, v = self.qkv(x, cos, sin)
        out = attention(q, k, v, mask=mask, is_causal=mask is None, implementation=self.impl)
        return self.o_proj(out.reshape(*x.shape[:2], -1)), k, v

    def __call__(self, x, cos, sin, mask):
        return self.forward_kv(x, cos, sin, mask)[0]

    def decode(self, x, cos, sin, cache: KVCache, layer, slot, key_mask):
        """New tokens x [B,T,D] in slots slot..slot+T-1: writes their k/v into `cache` at `layer`
        and attends over that layer's cache. Returns (out [B,T,D], cache)."""
        q, k, v = self.qkv(x, cos, sin)
        ck, cv = write_kv(cache.k, layer, k, slot), write_kv(cache.v, layer, v, slot)
        lk = jax.lax.dynamic_index_in_dim(ck, layer, 0, keepdims=False)
        lv = jax.lax.dynamic_index_in_dim(cv, layer, 0, keepdims=False)
        out = cached_attention(q, lk, lv, key_mask, slot)
        return self.o_proj(out.reshape(*x.shape[:2], -1)), KVCache(ck, cv)


class DecoderLayer(nnx.Module):
    """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x))."""

    def __init__(self, cfg: Qwen2VLConfig, *, stack: int | None, rngs: nnx.Rngs):
        norm_kw = dict(eps=cfg.rms_norm_eps, stack=stack, param_dtype=cfg.weight_dtype, dtype=cfg.compute_dtype)
        self.input_layernorm = RMSNorm(cfg.hidden_size, **norm_kw)
        self.self_attn = Attention(cfg, stack=stack, rngs=rngs)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, **norm_kw)
        self.mlp = SwiGLU(
            cfg.hidden_size,
            cfg.intermediate_size,
            fused=cfg.fuse_gate_up,
            stack=stack,
            param_dtype=cfg.weight_dtype,
            dtype=cfg.compute_dtype,
            init_std=cfg.initializer_range,
            rngs=rngs,
        )

    def __call__(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))

    def prefill(self, x, cos, sin, mask, cache: KVCache, layer):
        """As __call__, and writes this layer's k/v of the whole prompt into slots 0..T-1."""
        out, k, v = self.self_attn.forward_kv(self.input_layernorm(x), cos, sin, mask)
        cache = KVCache(write_kv(cache.k, layer, k, 0), write_kv(cache.v, layer, v, 0))
        x = x + out
        return x + self.mlp(self.post_attention_layernorm(x)), cache

    def decode(self, x, cos, sin, cache: KVCache, layer, slot, key_mask):
        out, cache = self.self_attn.decode(self.input_layernorm(x), cos, sin, cache, layer, slot, key_mask)
        x = x + out
        return x + self.mlp(self.post_attention_layernorm(x)), cache


_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Qwen2VL(nnx.Module):
    """Qwen2-VL / Qwen2.5-VL for conditional generation (vision tower + causal LM)."""

    def __init__(self, config: Qwen2VLConfig, *, rngs: nnx.Rngs):
        cfg = config
        self.config = cfg
        self.embed_tokens = Embed(
            cfg.vocab_size,
            cfg.hidden_size,
            param_dtype=cfg.weight_dtype,
            dtype=cfg.compute_dtype,
            init_std=cfg.initializer_range,
            rngs=rngs,
        )
        self.layers = DecoderLayer(cfg, stack=cfg.num_layers, rngs=rngs)
        self.norm = RMSNorm(
            cfg.hidden_size, eps=cfg.rms_norm_eps, param_dtype=cfg.weight_dtype, dtype=cfg.compute_dtype
        )
        if cfg.tie_word_embeddings:
            self.lm_head = None
        else:
            self.lm_head = Linear(
                cfg.hidden_size,
                cfg.vocab_size,
                axes=("embed", "vocab"),
                param_dtype=cfg.weight_dtype,
                dtype=cfg.compute_dtype,
                init_std=cfg.initializer_range,
                rngs=rngs,
            )
        if cfg.with_vision:
            if cfg.vision_config is None:
                raise ValueError("with_vision=True but the config has no vision_config")

            # The tower uses the LM's attention backend too (cuDNN on GPU when asked).
            tower = VisionTower(
                cfg.vision_config,
                model_type=cfg.model_type,
                dtype=cfg.compute_dtype,
                param_dtype=cfg.weight_dtype,
                implementation=cfg.attention_impl,
                rngs=rngs,
            )
            setattr(self, VISION_ATTR, tower)
        else:
            setattr(self, VISION_ATTR, None)

    # -- inputs ---------------------------------------------------------------------------------
    def position_ids(self, input_ids, attention_mask=None, image_grid_thw=None) -> jax.Array:
        """M-RoPE position ids [3, B, T] (HF `get_rope_index` rule); works inside jit."""
        b, t = input_ids.shape
        if image_grid_thw is None or len(np.asarray(image_grid_thw).reshape(-1, 3)) == 0:
            return text_position_ids(attention_mask, b, t, xp=jnp)
        pos, _ = mrope_position_ids(
            input_ids,
            attention_mask,
            image_grid_thw,
            image_token_id=self.config.image_token_id,
            spatial_merge_size=self.config.spatial_merge_size,
            xp=jnp,
        )
        return pos

    def image_features(self, pixel_values, image_grid_thw) -> jax.Array:
        """Vision tower output [n_image_tokens, hidden] for all images of the batch."""
        tower = getattr(self, VISION_ATTR)
        if tower is None:
            raise ValueError(
                "pixel_values given but the model was built with with_vision=False; pass image_features instead"
            )
        if image_grid_thw is None:
            raise ValueError("pixel_values given without image_grid_thw")
        return tower(pixel_values, np.asarray(image_grid_thw).reshape(-1, 3))

    def embed(
        self, input_ids, *, pixel_values=None, image_grid_thw=None, image_features=None, attention_mask=None
    ) -> jax.Array:
        """Token embeddings [B, T, D] with image features written over the image tokens
        (row-major order over the batch, as HF's masked_scatter)."""
        x = self.embed_tokens(input_ids)
        if pixel_values is not None:
            if image_features is not None:
                raise ValueError("give pixel_values or image_features, not both")
            image_features = self.image_features(pixel_values, image_grid_thw)
        if image_features is None:
            return x
        if not isinstance(input_ids, jax.core.Tracer) and image_grid_thw is not None:
            check_image_tokens(
                input_ids,
                attention_mask,
                image_grid_thw,
                image_token_id=self.config.image_token_id,
                spatial_merge_size=self.config.spatial_merge_size,
            )
        if image_features.ndim != 2 or image_features.shape[1] != x.shape[-1]:
            raise ValueError(f"image_features shape {image_features.shape}, expected [n, {x.shape[-1]}]")
        is_img = input_ids == self.config.image_token_id
        if attention_mask is not None:
            is_img = is_img & attention_mask.astype(bool)
        k = jnp.cumsum(is_img.reshape(-1).astype(jnp.int32)) - 1
        k = jnp.clip(k, 0, image_features.shape[0] - 1).reshape(is_img.shape)
        feats = jnp.take(image_features.astype(x.dtype), k, axis=0)
        return jnp.where(is_img[..., None], feats, x)

    # -- trunk ----------------------------------------------------------------------------------
    def run_layers(self, x, cos, sin, mask) -> jax.Array:
        """All decoder layers with one `jax.lax.scan` over the stacked parameters."""
        graphdef, state = nnx.split(self.layers)

        def body(h, layer_state):
            layer = nnx.merge(graphdef, layer_state)
            return layer(h, cos, sin, mask), None

        policy = self.config.remat_policy
        if policy is not None:
            body = jax.checkpoint(body, policy=_REMAT_POLICIES[policy], prevent_cse=False)
        x, _ = jax.lax.scan(body, x, state)
        return x

    def hidden_states(
        self,
        input_ids,
        *,
        attention_mask=None,
        position_ids=None,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
        inputs_embeds=None,
    ) -> jax.Array:
        """Final-norm hidden states [B, T, D]."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(
                input_ids,
                pixel_values=pixel_values,
                image_grid_thw=image_grid_thw,
                image_features=image_features,
                attention_mask=attention_mask,
            )
        if position_ids is None:
            if input_ids is None:
                raise ValueError("position_ids are required when input_ids is None")
            has_images = pixel_values is not None or image_features is not None
            if has_images and image_grid_thw is None:
                raise ValueError("image inputs need image_grid_thw (or explicit position_ids)")
            grid = image_grid_thw if has_images else None
            position_ids = self.position_ids(input_ids, attention_mask, grid)
        inv_freq = rope_inv_freq(self.config.head_dim, self.config.rope_theta)
        cos, sin = mrope_cos_sin(position_ids, inv_freq, self.config.mrope_section)
        mask = causal_padding_mask(attention_mask, inputs_embeds.shape[1])
        x = self.run_layers(inputs_embeds, cos, sin, mask)
        return self.norm(x)

    # -- KV-cache decoding ----------------------------------------------------------------------
    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache:
        """A zero KV cache [layers, batch, kv_heads, max_len, head_dim] (default: compute dtype)."""
        cfg = self.config
        return init_kv_cache(cfg.num_layers, batch, cfg.num_kv_heads, max_len, cfg.head_dim, dtype or cfg.compute_dtype)

    def _scan_cached(self, x, cache: KVCache, step):
        """Runs `step(layer, h, cache, index) -> (h, cache)` over the stacked layers with one scan;
        the cache rides in the carry so each layer's write is an in-place update."""
        graphdef, state = nnx.split(self.layers)

        def body(carry, xs):
            layer_state, index = xs
            h, c = step(nnx.merge(graphdef, layer_state), *carry, index)
            return (h, c), None

        index = jnp.arange(self.config.num_layers, dtype=jnp.int32)
        (x, cache), _ = jax.lax.scan(body, (x, cache), (state, index))
        return x, cache

    def _cos_sin(self, position_ids):
        inv_freq = rope_inv_freq(self.config.head_dim, self.config.rope_theta)
        return mrope_cos_sin(position_ids, inv_freq, self.config.mrope_section)

    def prefill(
        self,
        input_ids,
        *,
        attention_mask,
        position_ids,
        cache: KVCache,
        image_features=None,
        pixel_values=None,
        image_grid_thw=None,
    ):
        """Runs a left-padded prompt batch [B, P], fills cache slots 0..P-1 and returns
        (float32 logits [B, V] of the last position, cache). position_ids [3, B, P] as
        `position_ids()` gives them (callers compute them on the host for static shapes)."""
        x = self.embed(
            input_ids,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            image_features=image_features,
            attention_mask=attention_mask,
        )
        cos, sin = self._cos_sin(position_ids)
        mask = causal_padding_mask(attention_mask, input_ids.shape[1])
        x, cache = self._scan_cached(x, cache, lambda layer, h, c, i: layer.prefill(h, cos, sin, mask, c, i))
        return self.logits_from_hidden(self.norm(x[:, -1])), cache

    def decode_step(self, tokens, *, position_ids, cache: KVCache, slot, key_mask):
        """tokens [B, T] placed in slots slot..slot+T-1 (position_ids [3, B, T]); key_mask [B, S]
        marks valid slots (these included). Returns (float32 logits [B, T, V], cache)."""
        x = self.embed_tokens(tokens)
        cos, sin = self._cos_sin(position_ids)
        x, cache = self._scan_cached(x, cache, lambda layer, h, c, i: layer.decode(h, cos, sin, c, i, slot, key_mask))
        return self.logits_from_hidden(self.norm(x)), cache

    def logits_from_hidden(self, h: jax.Array) -> jax.Array:
        """[.., D] -> [.., V] float32 logits (matmul in the compute dtype, f32 accumulation)."""
        if self.lm_head is None:
            return self.embed_tokens.attend(h)
        h = h.astype(self.config.compute_dtype)
        kernel = self.lm_head.kernel[...].astype(self.config.compute_dtype)
        logits = jnp.einsum("...d,dv->...v", h, kernel, preferred_element_type=jnp.float32)
        if self.lm_head.lora_segments:  # an adapter on the head (not in the default targets)
            logits = logits + self.lm_head.lora_forward(h).astype(jnp.float32)
        return logits

    def __call__(
        self,
        input_ids,
        *,
        attention_mask=None,
        position_ids=None,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
    ) -> jax.Array:
        """Logits [B, T, V] in float32."""
        h = self.hidden_states(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            image_features=image_features,
        )
        return self.logits_from_hidden(h)


# -- family: build / load / export ------------------------------------------------------------
def with_dtype(cfg: Qwen2VLConfig, dtype: str | None, options: dict) -> Qwen2VLConfig:
    changes = dict(options)
    if dtype is not None:
        changes.setdefault("dtype", dtype)
        changes.setdefault("param_dtype", dtype)
    return cfg.replace(**changes) if changes else cfg


def build(config: Qwen2VLConfig, dtype: str | None = None, rngs: nnx.Rngs | None = None, **options) -> Qwen2VL:
    """A randomly initialised model; `dtype` sets compute and parameter dtype, `options` any
    other config field (remat_policy, attention_impl, ...)."""
    return Qwen2VL(with_dtype(config, dtype, options), rngs=rngs if rngs is not None else nnx.Rngs(0))


def abstract_model(config: Qwen2VLConfig) -> Qwen2VL:
    """The model with ShapeDtypeStructs instead of arrays (no memory, no compute)."""
    return nnx.eval_shape(lambda: Qwen2VL(config, rngs=nnx.Rngs(0)))
