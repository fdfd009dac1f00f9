"""Configuration of the Llama family (transformers' `LlamaForCausalLM`), parsed from an HF
config.json, and its rotary frequencies.

Rotary types: `default`, `linear` (positions divided by `factor`) and `llama3` (Llama 3.1's
band-wise frequency scaling). Others (dynamic NTK, YaRN, LongRoPE) and partial rotary raise.
Both config spellings parse: `rope_parameters` (transformers 5) and `rope_theta` +
`rope_scaling` (older files). The dict read is kept so export writes back what was read.
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
from rmpl_jax.models.layers import rope_inv_freq

MODEL_TYPE = "llama"
ROPE_TYPES = ("default", "linear", "llama3")
_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
_ROPE_KEYS = {
    "default": (),
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Architecture plus run-time options (as `Qwen2VLConfig`: dtypes, fusion, remat, attention
    backend). rope_scaling: the rotary type's parameters as sorted (key, value) pairs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    attention_bias: bool = False
    mlp_bias: bool = False
    rope_type: str = "default"
    rope_scaling: tuple[tuple[str, float], ...] = ()
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
        if self.rope_type not in ROPE_TYPES:
            raise NotImplementedError(f"rope type {self.rope_type!r} is not supported (only {ROPE_TYPES})")
        missing = set(_ROPE_KEYS[self.rope_type]) - dict(self.rope_scaling).keys()
        if missing:
            raise ValueError(f"rope type {self.rope_type!r} needs {sorted(missing)}")
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

    def replace(self, **changes) -> LlamaConfig:
        return dataclasses.replace(self, **changes)

    def inv_freq(self) -> np.ndarray:
        """Rotary inverse frequencies [head_dim / 2] (float32) after the rope type's scaling."""
        freq = rope_inv_freq(self.head_dim, self.rope_theta)
        params = dict(self.rope_scaling)
        if self.rope_type == "linear":
            return (freq / params["factor"]).astype(np.float32)
        if self.rope_type == "llama3":
            return llama3_scaled(freq, **params)
        return freq

    # -- HF config.json ------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, source: str = "config.json", **options) -> LlamaConfig:
        """Parses an HF Llama config dict; `options` set the run-time fields."""
        if hf.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{source}: model_type {hf.get('model_type')!r} is not {MODEL_TYPE!r}")
        missing = [k for k in _REQUIRED if hf.get(k) is None]
        if missing:
            raise KeyError(f"{source}: required keys missing: {missing}")
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(f"{source}: hidden_act {hf['hidden_act']!r} unsupported (only 'silu')")
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        rope_type = rope.pop("rope_type", rope.pop("type", "default"))
        if rope_type not in ROPE_TYPES:
            raise NotImplementedError(f"{source}: rope type {rope_type!r} is not supported (only {ROPE_TYPES})")
        if float(rope.get("partial_rotary_factor", 1.0)) != 1.0:
            raise NotImplementedError(f"{source}: partial_rotary_factor != 1 is not supported")
        theta = float(rope.get("rope_theta", hf.get("rope_theta") or 10000.0))
        scaling = tuple(sorted((k, float(rope[k])) for k in _ROPE_KEYS[rope_type] if k in rope))
        num_heads = int(hf["num_attention_heads"])
        hidden = int(hf["hidden_size"])
        mlp_bias = bool(hf.get("mlp_bias", False))
        if mlp_bias:
            options.setdefault("fuse_gate_up", False)  # a fused gate/up kernel carries no bias
        return cls(
            vocab_size=int(hf["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(hf["intermediate_size"]),
            num_layers=int(hf["num_hidden_layers"]),
            num_heads=num_heads,
            num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
            head_dim=int(hf.get("head_dim") or hidden // num_heads),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            attention_bias=bool(hf.get("attention_bias", False)),
            mlp_bias=mlp_bias,
            rope_type=rope_type,
            rope_scaling=scaling,
            initializer_range=float(hf.get("initializer_range", 0.02)),
            hf_config=copy.deepcopy(hf),
            **options,
        )

    @classmethod
    def from_dir(cls, hf_dir: str | Path, **options) -> LlamaConfig:
        path = Path(hf_dir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no config.json in the model directory")
        try:
            hf = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
        return cls.from_hf(hf, source=str(path), **options)

    def to_hf(self, torch_dtype: str | None = None) -> dict[str, Any]:
        """An HF config dict for this architecture, starting from the dict it was parsed from."""
        hf = copy.deepcopy(self.hf_config) if self.hf_config else {}
        hf.update(
            model_type=MODEL_TYPE,
            architectures=["LlamaForCausalLM"],
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            rms_norm_eps=self.rms_norm_eps,
            hidden_act="silu",
            tie_word_embeddings=self.tie_word_embeddings,
            attention_bias=self.attention_bias,
            mlp_bias=self.mlp_bias,
        )
        if not any(k in hf for k in ("rope_parameters", "rope_theta", "rope_scaling")):
            hf["rope_parameters"] = {
                "rope_type": self.rope_type,
                "rope_theta": self.rope_theta,
                **dict(self.rope_scaling),
            }
        if torch_dtype is not None:
            hf["torch_dtype"] = torch_dtype
            hf["dtype"] = torch_dtype
        return hf


def llama3_scaled(
    inv_freq: np.ndarray,
    *,
    factor: float,
    low_freq_factor: float,
    high_freq_factor: float,
    original_max_position_embeddings: float,
) -> np.ndarray:
    """Llama 3.1 rotary scaling: wavelengths shorter than context/high_freq_factor stay,
    longer than context/low_freq_factor are divided by `factor`, and the band between
    interpolates smoothly between the two."""
    context = float(original_max_position_embeddings)
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > context / low_freq_factor, inv_freq / factor, inv_freq)
    smooth = (context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    between = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= context / high_freq_factor) & (wavelen <= context / low_freq_factor)
    return np.where(medium, between, scaled).astype(np.float32)
