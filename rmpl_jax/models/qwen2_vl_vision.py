"""Qwen2-VL / Qwen2.5-VL vision tower in Flax NNX.

One module serves both families; `VisionConfig.variant` picks the differences:

  qwen2_vl    LayerNorm, QuickGELU MLP (fc1/fc2), full attention in every block.
  qwen2_5_vl  RMSNorm, SwiGLU MLP (gate/up fused, down), window attention except in
              `fullatt_block_indexes`; tokens are permuted into window order before the
              blocks and the merged outputs are permuted back afterwards.

Attention never crosses an image (or video frame) or, in window blocks, a window: HF
runs one attention call per `cu_seqlens` segment. We either gather the segments into a
padded batch (`attention='packed'`, default: memory per segment, not per call) or run one
call over all patches with a segment mask (`attention='mask'`). Every index (rotary
positions, window permutation, segments, packing) is computed in numpy from the static
`grid_thw` (`qwen2_vl_vision_index`), so under `jit` the tower sees fixed shapes and no
data-dependent ops. Blocks are one module stacked on a leading 'layers' axis
(`common.Linear(stack=depth)`) and run with `jax.lax.scan`; the per-layer choice between
full and window attention is a scanned boolean (`lax.cond` between the two packed layouts,
or a select between the two segment-id vectors for the mask).

Projections are `common.Linear`, so LoRA can target the tower by regex over projection
paths, e.g. `apply_lora(model, r, alpha, r"^visual/blocks/attn/(qkv|proj)$")`; the fused
Qwen2.5-VL gate/up offers `visual/blocks/mlp/gate_proj` and `.../up_proj` separately.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rmpl_jax.models.common import Linear, RMSNorm, make_param
from rmpl_jax.models.hf_names import NameRule
from rmpl_jax.models.qwen2_vl_vision_index import Packing, VisionPlan, rotary_cos_sin, vision_plan

VARIANTS = ("qwen2_vl", "qwen2_5_vl")

_ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
}


# ----------------------------------------------------------------------------- config


def _as_int(value: Any, key: str) -> int:
    """HF allows a list for patch sizes; the released models only use equal sides."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"vision_config.{key}={value!r}: only square/equal sizes are supported")
        value = value[0]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"vision_config.{key} must be an int, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Static description of the tower; build it with `VisionConfig.from_hf`.

    width is the tower's own hidden size (`embed_dim` in Qwen2-VL, `hidden_size` in
    Qwen2.5-VL); out_dim is the merger output (= the language model's hidden size).
    window_size is in pixels (Qwen2.5-VL only).
    """

    variant: str
    depth: int
    width: int
    num_heads: int
    mlp_dim: int
    out_dim: int
    hidden_act: str
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    rope_theta: float = 10000.0
    window_size: int = 0
    fullatt_block_indexes: tuple[int, ...] = ()
    norm_eps: float = 1e-6

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"VisionConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(
                f"vision_config.hidden_act={self.hidden_act!r} is not supported; known: {sorted(_ACTIVATIONS)}"
            )
        for key in ("depth", "width", "num_heads", "mlp_dim", "out_dim", "in_channels", "patch_size",
                    "temporal_patch_size", "spatial_merge_size"):
            if getattr(self, key) <= 0:
                raise ValueError(f"vision_config: {key} must be positive, got {getattr(self, key)}")
        if self.width % self.num_heads:
            raise ValueError(f"vision_config: width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 4:
            # 2-D rotary: head_dim/2 frequencies per axis pair, each used for sin and cos.
            raise ValueError(f"vision_config: head_dim {self.head_dim} must be divisible by 4 for 2-D rotary")
        bad = [i for i in self.fullatt_block_indexes if not 0 <= i < self.depth]
        if bad:
            raise ValueError(f"vision_config.fullatt_block_indexes {bad} out of range for depth {self.depth}")
        if self.variant == "qwen2_5_vl" and self.merger_window <= 0:
            raise ValueError(
                f"vision_config.window_size={self.window_size} is smaller than one merged patch "
                f"({self.spatial_merge_size * self.patch_size} pixels)"
            )

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Length of one flattened input patch: C * T * P * P."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def merge_unit(self) -> int:
        return self.spatial_merge_size**2

    @property
    def merger_window(self) -> int:
        """Window side in merged-token units (HF's `vit_merger_window_size`)."""
        return self.window_size // self.spatial_merge_size // self.patch_size

    @property
    def uses_windows(self) -> bool:
        return self.variant == "qwen2_5_vl"

    @property
    def norm_kind(self) -> str:
        return "rms" if self.variant == "qwen2_5_vl" else "layer"

    def full_attention_layers(self) -> np.ndarray:
        """Boolean [depth]: True where the block attends over the whole image."""
        if not self.uses_windows:
            return np.ones((self.depth,), bool)
        flags = np.zeros((self.depth,), bool)
        flags[list(self.fullatt_block_indexes)] = True
        return flags

    @classmethod
    def from_hf(cls, vision_config: Mapping[str, Any] | Any, model_type: str | None = None) -> "VisionConfig":
        """Parse an HF `vision_config` (dict or transformers config object).

        model_type is the top-level `config.json` model_type ('qwen2_vl' / 'qwen2_5_vl');
        when absent it is taken from the vision dict's own model_type, or from the keys
        only one variant has (`embed_dim` vs `out_hidden_size`).
        """
        if not isinstance(vision_config, Mapping):
            if not hasattr(vision_config, "to_dict"):
                raise TypeError(f"vision_config must be a dict or an HF config, got {type(vision_config).__name__}")
            vision_config = vision_config.to_dict()
        d = dict(vision_config)
        variant = _variant_of(d, model_type)

        def get(key, default, *aliases):
            for k in (key, *aliases):
                if k in d and d[k] is not None:
                    return d[k]
            return default

        rope = d.get("rope_parameters") or {}
        rope_type = rope.get("rope_type", "axial") if isinstance(rope, Mapping) else "axial"
        if rope_type not in ("axial", "default"):
            raise ValueError(f"vision_config.rope_parameters.rope_type={rope_type!r}: only axial rotary is supported")
        rope_theta = float((rope.get("rope_theta") if isinstance(rope, Mapping) else None)
                           or d.get("rope_theta") or 10000.0)
        common = dict(
            variant=variant,
            depth=_as_int(get("depth", 32, "num_hidden_layers"), "depth"),
            num_heads=_as_int(get("num_heads", 16, "num_attention_heads"), "num_heads"),
            in_channels=_as_int(get("in_channels", 3, "in_chans"), "in_channels"),
            patch_size=_as_int(get("patch_size", 14, "spatial_patch_size"), "patch_size"),
            temporal_patch_size=_as_int(get("temporal_patch_size", 2), "temporal_patch_size"),
            spatial_merge_size=_as_int(get("spatial_merge_size", 2), "spatial_merge_size"),
            rope_theta=rope_theta,
        )
        if variant == "qwen2_vl":
            width = _as_int(get("embed_dim", 1280), "embed_dim")
            mlp_ratio = get("mlp_ratio", 4)
            return cls(
                width=width,
                mlp_dim=int(width * mlp_ratio),  # HF: int(embed_dim * mlp_ratio)
                out_dim=_as_int(get("hidden_size", 3584), "hidden_size"),
                hidden_act=str(get("hidden_act", "quick_gelu")),
                **common,
            )
        fullatt = get("fullatt_block_indexes", (7, 15, 23, 31))
        return cls(
            width=_as_int(get("hidden_size", 3584), "hidden_size"),
            mlp_dim=_as_int(get("intermediate_size", 3420), "intermediate_size"),
            out_dim=_as_int(get("out_hidden_size", 3584), "out_hidden_size"),
            hidden_act=str(get("hidden_act", "silu")),
            window_size=_as_int(get("window_size", 112), "window_size"),
            fullatt_block_indexes=tuple(_as_int(i, "fullatt_block_indexes") for i in fullatt),
            **common,
        )


def _variant_of(d: Mapping[str, Any], model_type: str | None) -> str:
    if model_type is not None:
        if model_type not in VARIANTS:
            raise ValueError(f"model_type {model_type!r} has no Qwen vision tower; expected one of {VARIANTS}")
        return model_type
    inner = d.get("model_type")
    if inner in ("qwen2_vl_vision", "qwen2_vl"):
        return "qwen2_vl"
    if inner in ("qwen2_5_vl_vision", "qwen2_5_vl"):
        return "qwen2_5_vl"
    if "embed_dim" in d and "out_hidden_size" not in d:
        return "qwen2_vl"
    if "out_hidden_size" in d or "fullatt_block_indexes" in d:
        return "qwen2_5_vl"
    raise ValueError(
        "cannot tell the vision tower variant: pass model_type ('qwen2_vl' or 'qwen2_5_vl') "
        f"or give vision_config a model_type (keys seen: {sorted(d)})"
    )


# ------------------------------------------------------------------------------ layers


class LayerNorm(nnx.Module):
    """HF LayerNorm with weight and bias: statistics in float32, result in the input's dtype.
    `stack=L` gives both parameters a leading 'layers' axis (as `common.RMSNorm`)."""

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


def _norm(config: VisionConfig, *, stack: int | None, dtype, param_dtype) -> nnx.Module:
    """The variant's norm: LayerNorm (Qwen2-VL) or RMSNorm (Qwen2.5-VL)."""
    if config.norm_kind == "layer":
        return LayerNorm(config.width, eps=config.norm_eps, stack=stack, param_dtype=param_dtype)
    return RMSNorm(config.width, eps=config.norm_eps, stack=stack, param_dtype=param_dtype, dtype=dtype)


def _rotate_half(x):
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([-x2, x1], axis=-1)


def masked_attention(q, k, v, segments, implementation=None):
    """Attention of [n, heads, head_dim] inputs within equal `segments` ids, as one [n, n]
    masked call (memory grows with the square of all patches of the call)."""
    mask = (segments[:, None] == segments[None, :])[None, None]
    return jax.nn.dot_product_attention(q[None], k[None], v[None], mask=mask, implementation=implementation)[0]


def packed_attention(q, k, v, pack: Packing, implementation=None):
    """The same result as masked_attention, with the segments gathered into a padded batch
    [S, L] first (memory grows with S * L^2, e.g. per image or per window). Padding is
    expressed as key lengths, which both the XLA and the cuDNN backends take."""
    s, width = pack.gather.shape
    flat = pack.gather.reshape(-1)
    qp, kp, vp = (t[flat].reshape(s, width, *t.shape[1:]) for t in (q, k, v))
    lengths = jnp.asarray(pack.valid.sum(1), jnp.int32)
    out = jax.nn.dot_product_attention(qp, kp, vp, key_value_seq_lengths=lengths, implementation=implementation)
    return out.reshape(s * width, *out.shape[2:])[pack.scatter]


def _apply_rotary(x, cos, sin):
    """x [n, heads, head_dim]; rotation in float32, result back in x's dtype."""
    xf = x.astype(jnp.float32)
    cos, sin = cos[:, None, :], sin[:, None, :]
    return (xf * cos + _rotate_half(xf) * sin).astype(x.dtype)


class _Attention(nnx.Module):
    def __init__(self, config: VisionConfig, *, stack: int | None, dtype, param_dtype, rngs):
        w = config.width
        kw = dict(use_bias=True, stack=stack, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        # Fused q|k|v as in the checkpoint (one HF tensor, so one LoRA segment);
        # 'vision_heads' names the heads*head_dim axis.
        self.qkv = Linear(w, 3 * w, axes=("vision_embed", "vision_heads"), **kw)
        self.proj = Linear(w, w, axes=("vision_heads", "vision_embed"), **kw)

    def __call__(self, x, cos, sin, attend):
        """attend(q, k, v) -> out, all [n, heads, head_dim]: the segment structure."""
        n = x.shape[0]
        qkv = self.qkv(x).reshape(n, 3, self.num_heads, self.head_dim)
        q = _apply_rotary(qkv[:, 0], cos, sin)
        k = _apply_rotary(qkv[:, 1], cos, sin)
        out = attend(q, k, qkv[:, 2])
        return self.proj(out.reshape(n, self.num_heads * self.head_dim))


class _Mlp(nnx.Module):
    """QuickGELU-style fc1/fc2 MLP (Qwen2-VL) or SwiGLU gate_up/down MLP (Qwen2.5-VL)."""

    def __init__(self, config: VisionConfig, *, stack: int | None, dtype, param_dtype, rngs):
        w, f = config.width, config.mlp_dim
        kw = dict(use_bias=True, stack=stack, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.act = _ACTIVATIONS[config.hidden_act]
        self.gated = config.variant == "qwen2_5_vl"
        if self.gated:
            # HF's gate_proj and up_proj fused; segments keep their LoRA adapters separate.
            self.gate_up = Linear(w, 2 * f, axes=("vision_embed", "vision_mlp"),
                                  segments=(("gate_proj", f), ("up_proj", f)), **kw)
            self.down = Linear(f, w, axes=("vision_mlp", "vision_embed"), **kw)
        else:
            self.fc1 = Linear(w, f, axes=("vision_embed", "vision_mlp"), **kw)
            self.fc2 = Linear(f, w, axes=("vision_mlp", "vision_embed"), **kw)

    def __call__(self, x):
        if self.gated:
            gate, up = jnp.split(self.gate_up(x), 2, axis=-1)
            return self.down(self.act(gate) * up)
        return self.fc2(self.act(self.fc1(x)))


class _Block(nnx.Module):
    """Pre-norm block; built with `stack=depth`, every parameter has a leading 'layers' axis
    and the tower scans over it."""

    def __init__(self, config: VisionConfig, *, stack: int | None, dtype, param_dtype, rngs):
        kw = dict(stack=stack, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = _norm(config, **kw)
        self.attn = _Attention(config, rngs=rngs, **kw)
        self.norm2 = _norm(config, **kw)
        self.mlp = _Mlp(config, rngs=rngs, **kw)

    def __call__(self, x, cos, sin, attend):
        x = x + self.attn(self.norm1(x), cos, sin, attend)
        return x + self.mlp(self.norm2(x))


class _Merger(nnx.Module):
    """Norm, then concatenate each merge x merge block of patches and apply a 2-layer GELU MLP."""

    def __init__(self, config: VisionConfig, *, dtype, param_dtype, rngs):
        kw = dict(use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        d = config.width * config.merge_unit
        self.d = d
        self.norm = _norm(config, stack=None, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = Linear(d, d, axes=(None, "vision_mlp"), **kw)
        self.fc2 = Linear(d, config.out_dim, axes=("vision_mlp", "embed"), **kw)

    def __call__(self, x):
        x = self.norm(x).reshape(-1, self.d)
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class VisionTower(nnx.Module):
    """Patch embedding, stacked transformer blocks (scanned) and patch merger.

    __call__(pixel_values [n_patches, C*T*P*P], grid_thw numpy int [n_images, 3]) returns
    [n_merged_tokens, out_dim]: one row per merge x merge block, images in order, rows of
    each image in raster order of merged blocks (what the LM's image-pad tokens receive).

    attention: 'packed' (default) gathers each image/frame (full blocks) or window
    (windowed blocks) into a padded batch, so memory grows with the largest segment, not
    with all patches of the call; 'mask' runs one [n, n] segment-masked attention (simple,
    but quadratic in the patches of all images together). Both give the same numbers.
    implementation: passed to jax.nn.dot_product_attention (None = XLA, 'cudnn' on GPU).
    """

    def __init__(self, config: VisionConfig | Mapping[str, Any], *, model_type: str | None = None,
                 dtype=jnp.float32, param_dtype=jnp.float32, attention: str = "packed",
                 implementation: str | None = None, rngs: nnx.Rngs):
        if not isinstance(config, VisionConfig):  # an HF vision_config dict
            config = VisionConfig.from_hf(config, model_type)
        if attention not in ("packed", "mask"):
            raise ValueError(f"attention must be 'packed' or 'mask', got {attention!r}")
        dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
        self.config = config
        self.dtype = dtype
        self.attention = attention
        self.implementation = implementation
        self.patch_embed = Linear(config.patch_dim, config.width, axes=("patch", "vision_embed"),
                                  dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        # One module whose parameters carry a leading 'layers' axis (scanned in __call__).
        self.blocks = _Block(config, stack=config.depth, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.merger = _Merger(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, pixel_values: jax.Array, grid_thw: np.ndarray) -> jax.Array:
        cfg = self.config
        plan = vision_plan(cfg, grid_thw)
        if pixel_values.ndim != 2 or pixel_values.shape != (plan.n_patches, cfg.patch_dim):
            raise ValueError(
                f"pixel_values has shape {tuple(pixel_values.shape)}; grid_thw {np.asarray(grid_thw).tolist()} "
                f"needs ({plan.n_patches}, {cfg.patch_dim}) = (sum t*h*w, C*T*P*P)"
            )
        x = self.patch_embed(pixel_values)
        if plan.token_order is not None:
            x = x[plan.token_order]
        cos, sin = rotary_cos_sin(plan.positions, cfg.head_dim, cfg.rope_theta)
        attend_for = self._attention_selector(plan)
        flags = jnp.asarray(cfg.full_attention_layers())

        graphdef, params = nnx.split(self.blocks)

        def body(h, xs):
            layer_params, is_full = xs
            block = nnx.merge(graphdef, layer_params)
            return block(h, cos, sin, attend_for(is_full)), None

        x, _ = jax.lax.scan(body, x, (params, flags))
        merged = self.merger(x)
        if plan.merged_restore is not None:
            merged = merged[plan.merged_restore]
        return merged

    def _attention_selector(self, plan: VisionPlan):
        """is_full (scanned bool) -> attend(q, k, v) for that layer."""
        impl = self.implementation
        if self.attention == "mask":
            full_seg = jnp.asarray(plan.full_segments)
            if plan.window_segments is None:
                return lambda is_full: functools.partial(masked_attention, segments=full_seg, implementation=impl)
            win_seg = jnp.asarray(plan.window_segments)
            return lambda is_full: functools.partial(
                masked_attention, segments=jnp.where(is_full, full_seg, win_seg), implementation=impl)
        full = functools.partial(packed_attention, pack=plan.full_packing, implementation=impl)
        if plan.window_packing is None:
            return lambda is_full: full
        window = functools.partial(packed_attention, pack=plan.window_packing, implementation=impl)
        # Both layouts are compiled once; cond runs only the one this layer needs.
        return lambda is_full: (lambda q, k, v: jax.lax.cond(is_full, full, window, q, k, v))


# ------------------------------------------------------------------- HF name mapping


def vision_name_rules(vision_config: VisionConfig | Mapping[str, Any], model_type: str | None = None) -> list[NameRule]:
    """HF tensor names (relative to the tower, e.g. 'blocks.3.attn.qkv.weight'; on disk the
    tower sits under 'visual.', in transformers 5 modules under 'model.visual.') -> our
    leaf paths relative to the tower."""
    cfg = vision_config if isinstance(vision_config, VisionConfig) else VisionConfig.from_hf(vision_config, model_type)
    blk = r"blocks\.(?P<layer>\d+)\."
    rules = [
        NameRule(r"patch_embed\.proj\.weight", "patch_embed/kernel", flatten_to_2d=True, transpose=True,
                 hf_shape=(cfg.width, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size)),
        NameRule(blk + r"norm1\.weight", "blocks/norm1/scale"),
        NameRule(blk + r"norm2\.weight", "blocks/norm2/scale"),
        NameRule(blk + r"attn\.qkv\.weight", "blocks/attn/qkv/kernel", transpose=True),
        NameRule(blk + r"attn\.qkv\.bias", "blocks/attn/qkv/bias"),
        NameRule(blk + r"attn\.proj\.weight", "blocks/attn/proj/kernel", transpose=True),
        NameRule(blk + r"attn\.proj\.bias", "blocks/attn/proj/bias"),
        NameRule(r"merger\.ln_q\.weight", "merger/norm/scale"),
        NameRule(r"merger\.mlp\.0\.weight", "merger/fc1/kernel", transpose=True),
        NameRule(r"merger\.mlp\.0\.bias", "merger/fc1/bias"),
        NameRule(r"merger\.mlp\.2\.weight", "merger/fc2/kernel", transpose=True),
        NameRule(r"merger\.mlp\.2\.bias", "merger/fc2/bias"),
    ]
    if cfg.norm_kind == "layer":
        rules += [
            NameRule(blk + r"norm1\.bias", "blocks/norm1/bias"),
            NameRule(blk + r"norm2\.bias", "blocks/norm2/bias"),
            NameRule(r"merger\.ln_q\.bias", "merger/norm/bias"),
        ]
    if cfg.variant == "qwen2_5_vl":
        f = cfg.mlp_dim
        rules += [
            NameRule(blk + r"mlp\.gate_proj\.weight", "blocks/mlp/gate_up/kernel", transpose=True,
                     last_axis_slice=(0, f)),
            NameRule(blk + r"mlp\.up_proj\.weight", "blocks/mlp/gate_up/kernel", transpose=True,
                     last_axis_slice=(f, 2 * f)),
            NameRule(blk + r"mlp\.gate_proj\.bias", "blocks/mlp/gate_up/bias", last_axis_slice=(0, f)),
            NameRule(blk + r"mlp\.up_proj\.bias", "blocks/mlp/gate_up/bias", last_axis_slice=(f, 2 * f)),
            NameRule(blk + r"mlp\.down_proj\.weight", "blocks/mlp/down/kernel", transpose=True),
            NameRule(blk + r"mlp\.down_proj\.bias", "blocks/mlp/down/bias"),
        ]
    else:
        rules += [
            NameRule(blk + r"mlp\.fc1\.weight", "blocks/mlp/fc1/kernel", transpose=True),
            NameRule(blk + r"mlp\.fc1\.bias", "blocks/mlp/fc1/bias"),
            NameRule(blk + r"mlp\.fc2\.weight", "blocks/mlp/fc2/kernel", transpose=True),
            NameRule(blk + r"mlp\.fc2\.bias", "blocks/mlp/fc2/bias"),
        ]
    return rules


def vision_params_from_hf(
    config: VisionConfig, tensors: Mapping[str, Any], prefix: str = "", *, shapes: Mapping[str, tuple] | None = None
) -> dict[str, np.ndarray]:
    """Our leaves ('/'-path -> numpy array) from HF tensors named `prefix + <tower name>`.

    A small, self-contained loader for tests and tools (the full-model loader lives in
    hf_io). Every tensor whose name starts with `prefix` (all of them when prefix is '')
    is a tower tensor and must be used and every leaf (every layer row, every fused
    slice) filled; anything else raises naming the tensor or leaf. `shapes` are the leaf
    shapes; by default they come from an abstract VisionTower.
    """
    if shapes is None:
        shapes = vision_leaf_shapes(config)
    rules = vision_name_rules(config)
    out = {path: np.zeros(shape, np.float32) for path, shape in shapes.items()}
    filled: dict[str, np.ndarray] = {path: np.zeros(shape[:1] + shape[-1:], bool) if path.startswith("blocks/")
                                     else np.zeros(shape[-1:], bool) for path, shape in shapes.items()}
    tower_names = [k for k in tensors if k.startswith(prefix)]
    for name in tower_names:
        rel = name[len(prefix):]
        hits = [(r, m) for r in rules if (m := r.match(rel))]
        if not hits:
            raise KeyError(f"HF tensor {name!r} matches no vision name rule")
        rule, match = hits[0]
        if rule.ours not in out:
            raise KeyError(f"rule for {name!r} targets {rule.ours!r}, which the tower does not have")
        value = rule.to_ours(np.asarray(tensors[name], np.float32))
        start, stop = rule.last_axis_slice or (0, out[rule.ours].shape[-1])
        layer = match.groupdict().get("layer")
        if layer is not None and int(layer) >= out[rule.ours].shape[0]:
            raise ValueError(f"HF tensor {name!r}: layer {layer} >= depth {out[rule.ours].shape[0]}")
        target = out[rule.ours] if layer is None else out[rule.ours][int(layer)]
        expected = target[..., start:stop].shape
        if value.shape != expected:
            raise ValueError(f"HF tensor {name!r} has shape {value.shape} after mapping; {rule.ours} needs {expected}")
        target[..., start:stop] = value
        mark = filled[rule.ours] if layer is None else filled[rule.ours][int(layer)]
        mark[start:stop] = True
    missing = [p for p, m in filled.items() if not m.all()]
    if missing:
        raise KeyError(f"no HF tensor (prefix {prefix!r}) filled vision leaves {missing}")
    return out


def vision_leaf_shapes(config: VisionConfig) -> dict[str, tuple[int, ...]]:
    """'/'-path -> shape of every parameter leaf, without allocating anything."""
    abstract = nnx.eval_shape(lambda: VisionTower(config, rngs=nnx.Rngs(0)))
    return {
        "/".join(map(str, path)): tuple(var.get_value().shape)
        for path, var in nnx.to_flat_state(nnx.state(abstract, nnx.Param))
    }


def vision_tower_from_hf(
    config: VisionConfig, tensors: Mapping[str, Any], prefix: str = "", *,
    dtype=jnp.float32, param_dtype=jnp.float32, **options,
) -> VisionTower:
    """Build a VisionTower whose weights come from HF tensors (see vision_params_from_hf);
    `options` (attention, implementation) go to VisionTower."""
    model = nnx.eval_shape(lambda: VisionTower(config, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(0),
                                               **options))
    arrays = vision_params_from_hf(config, tensors, prefix)
    flat = []
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key = "/".join(map(str, path))
        flat.append((path, var.replace(jnp.asarray(arrays[key], param_dtype))))
    nnx.update(model, nnx.from_flat_state(flat))
    return model
