"""Configuration of the Gemma 3 language model (transformers' `Gemma3TextConfig`,
`model_type: gemma3_text`), parsed from an HF config.json, and its two rotary tables.

Gemma 3 interleaves sliding-window layers (attending to the last `sliding_window` keys, rotary
base `rope_local_base_freq`, 10k) with full-attention layers (base 1M, `linear` scaling on the
4B and larger): `layer_types`, or every `sliding_window_pattern`-th layer full (6 by default).
Both config spellings parse: `rope_parameters` per layer type (transformers 5) and
`rope_theta` / `rope_local_base_freq` / `rope_scaling` (older files). Logit soft-capping
(Gemma 2) and bidirectional text attention (EmbeddingGemma) are refused naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from rmpl_jax.models.decoder import REMAT_POLICIES
from rmpl_jax.models.layers import ACTIVATIONS, rope_inv_freq

MODEL_TYPE = "gemma3_text"
ROPE_TYPES = ("default", "linear")
LAYER_TYPES = ("full_attention", "sliding_attention")
RUNTIME_FIELDS = ("dtype", "param_dtype", "fuse_qkv", "fuse_gate_up", "remat_policy", "attention_impl")
_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
# Keys Gemma 3 leaves unset (null or false); set, they make another model.
_REFUSED = ("final_logit_softcapping", "attn_logit_softcapping", "use_bidirectional_attention")


@dataclasses.dataclass(frozen=True)
class RopeSetting:
    """One layer type's rotary: base, type (`default` or `linear`) and linear factor."""

    theta: float
    rope_type: str = "default"
    factor: float = 1.0

    def inv_freq(self, head_dim: int) -> np.ndarray:
        return (rope_inv_freq(head_dim, self.theta) / self.factor).astype(np.float32)

    def to_hf(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rope_type": self.rope_type, "rope_theta": self.theta}
        if self.rope_type == "linear":
            out["factor"] = self.factor
        return out


@dataclasses.dataclass(frozen=True)
class Gemma3TextConfig:
    """Architecture plus run-time options (dtypes, fusion, remat, attention backend).
    layer_sliding: per layer, True for a sliding-window layer."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    query_pre_attn_scalar: int
    sliding_window: int
    layer_sliding: tuple[bool, ...]
    rope_full: RopeSetting
    rope_sliding: RopeSetting
    tie_word_embeddings: bool = True
    attention_bias: bool = False
    hidden_activation: str = "gelu_pytorch_tanh"
    initializer_range: float = 0.02
    hf_config: dict | None = dataclasses.field(default=None, compare=False, hash=False, repr=False)
    # run-time options
    dtype: str = "float32"
    param_dtype: str = "float32"
    fuse_qkv: bool = True
    fuse_gate_up: bool = True
    remat_policy: str | None = None
    attention_impl: str | None = None

    model_type = MODEL_TYPE

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not a multiple of num_kv_heads {self.num_kv_heads}")
        if len(self.layer_sliding) != self.num_layers:
            raise ValueError(f"{len(self.layer_sliding)} layer types for {self.num_layers} layers")
        if self.hidden_activation not in ACTIVATIONS:
            raise ValueError(f"hidden_activation {self.hidden_activation!r} not in {sorted(ACTIVATIONS)}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy {self.remat_policy!r} not in {REMAT_POLICIES}")
        for name in ("dtype", "param_dtype"):
            jnp.dtype(getattr(self, name))  # raises on an unknown dtype name

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def weight_dtype(self):
        return jnp.dtype(self.param_dtype)

    @property
    def embed_scale(self) -> float:
        """Gemma multiplies token embeddings by sqrt(hidden_size)."""
        return math.sqrt(self.hidden_size)

    def replace(self, **changes) -> Gemma3TextConfig:
        return dataclasses.replace(self, **changes)

    # -- HF config.json ------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, source: str = "config.json", **options) -> Gemma3TextConfig:
        """Parses an HF Gemma 3 text config dict; `options` set the run-time fields."""
        if hf.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ValueError(f"{source}: model_type {hf.get('model_type')!r} is not {MODEL_TYPE!r}")
        missing = [k for k in _REQUIRED if hf.get(k) is None]
        if missing:
            raise KeyError(f"{source}: required keys missing: {missing}")
        for key in _REFUSED:
            if hf.get(key):
                raise NotImplementedError(f"{source}: {key}={hf[key]!r} is not supported (Gemma 3 leaves it unset)")
        layers = int(hf["num_hidden_layers"])
        head_dim = int(hf.get("head_dim") or 256)
        return cls(
            vocab_size=int(hf["vocab_size"]),
            hidden_size=int(hf["hidden_size"]),
            intermediate_size=int(hf["intermediate_size"]),
            num_layers=layers,
            num_heads=int(hf["num_attention_heads"]),
            num_kv_heads=int(hf.get("num_key_value_heads") or hf["num_attention_heads"]),
            head_dim=head_dim,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            query_pre_attn_scalar=int(hf.get("query_pre_attn_scalar") or 256),
            sliding_window=int(hf.get("sliding_window") or 4096),
            layer_sliding=_layer_sliding(hf, layers, source),
            rope_full=_rope(hf, "full_attention", source),
            rope_sliding=_rope(hf, "sliding_attention", source),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
            attention_bias=bool(hf.get("attention_bias", False)),
            hidden_activation=str(hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"),
            initializer_range=float(hf.get("initializer_range", 0.02)),
            hf_config=copy.deepcopy(hf),
            **options,
        )

    @classmethod
    def from_dir(cls, hf_dir: str | Path, **options) -> Gemma3TextConfig:
        return cls.from_hf(read_config(hf_dir), source=str(Path(hf_dir) / "config.json"), **options)

    def to_hf(self, torch_dtype: str | None = None) -> dict[str, Any]:
        """An HF config dict for this architecture, starting from the dict it was parsed from."""
        hf = copy.deepcopy(self.hf_config) if self.hf_config else {}
        for old in ("rope_theta", "rope_local_base_freq", "rope_scaling", "sliding_window_pattern"):
            hf.pop(old, None)
        hf.update(
            model_type=MODEL_TYPE,
            architectures=["Gemma3ForCausalLM"],
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            rms_norm_eps=self.rms_norm_eps,
            query_pre_attn_scalar=self.query_pre_attn_scalar,
            sliding_window=self.sliding_window,
            layer_types=[LAYER_TYPES[int(s)] for s in self.layer_sliding],
            rope_parameters={"full_attention": self.rope_full.to_hf(), "sliding_attention": self.rope_sliding.to_hf()},
            hidden_activation=self.hidden_activation,
            tie_word_embeddings=self.tie_word_embeddings,
            attention_bias=self.attention_bias,
        )
        if torch_dtype is not None:
            hf["torch_dtype"] = torch_dtype
            hf["dtype"] = torch_dtype
        return hf


def read_config(hf_dir: str | Path) -> dict[str, Any]:
    """config.json of a model directory, with errors naming the file and line."""
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json in the model directory")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err


def _layer_sliding(hf: dict[str, Any], layers: int, source: str) -> tuple[bool, ...]:
    types = hf.get("layer_types")
    if types is None:
        pattern = int(hf.get("sliding_window_pattern") or 6)
        return tuple(bool((i + 1) % pattern) for i in range(layers))
    if len(types) != layers or any(t not in LAYER_TYPES for t in types):
        raise ValueError(f"{source}: layer_types must be {layers} of {LAYER_TYPES}, got {types}")
    return tuple(t == "sliding_attention" for t in types)


def _rope(hf: dict[str, Any], layer_type: str, source: str) -> RopeSetting:
    """One layer type's rotary from `rope_parameters[layer_type]` or the older keys."""
    params = hf.get("rope_parameters") or {}
    if layer_type in params or "full_attention" in params:
        spec = dict(params.get(layer_type) or {})
    elif layer_type == "full_attention":  # older files: rope_theta + rope_scaling
        spec = {"rope_theta": hf.get("rope_theta"), **dict(hf.get("rope_scaling") or {})}
    else:
        spec = {"rope_theta": hf.get("rope_local_base_freq")}
    default = 1_000_000.0 if layer_type == "full_attention" else 10_000.0
    rope_type = spec.get("rope_type", spec.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise NotImplementedError(f"{source}: {layer_type} rope type {rope_type!r} unsupported (only {ROPE_TYPES})")
    factor = float(spec.get("factor", 1.0)) if rope_type == "linear" else 1.0
    return RopeSetting(float(spec.get("rope_theta") or default), rope_type, factor)
