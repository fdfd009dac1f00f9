"""Configuration of the Qwen2-VL / Qwen2.5-VL family, parsed from a Hugging Face config.json.

Transformers has written these configs two ways: flat (text keys at the top level, as on the
Hub) and nested (text keys under `text_config`, transformers 5). Both parse to the same
`Qwen2VLConfig`; the original dict is kept so export writes back what was read.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp

MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")

# HF class defaults for keys a config.json may omit (transformers 5 Qwen2VLTextConfig).
_TEXT_DEFAULTS = {
    "rms_norm_eps": 1e-5,
    "rope_theta": 1_000_000.0,
    "mrope_section": (16, 24, 24),
    "initializer_range": 0.02,
    "hidden_act": "silu",
}
_REQUIRED_TEXT = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
_TOP_DEFAULTS = {
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}


@dataclasses.dataclass(frozen=True)
class Qwen2VLConfig:
    """Architecture plus run-time options (dtypes, fusion, remat, attention backend).

    dtype: compute dtype of activations and matmul inputs; param_dtype: storage of weights.
    remat_policy: None (keep activations), 'full' (recompute each layer), or 'dots'
        (save matmul outputs without batch dims) — applied to the scanned decoder layer.
    attention_impl: passed to jax.nn.dot_product_attention (None = XLA; 'cudnn' on GPU, bf16).
    with_vision: build the vision tower (`VisionTower`); False gives a text-only model that
        still takes precomputed `image_features`.
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    rms_norm_eps: float
    rope_theta: float
    mrope_section: tuple[int, ...]
    tie_word_embeddings: bool
    image_token_id: int
    video_token_id: int
    vision_start_token_id: int
    vision_end_token_id: int
    initializer_range: float = 0.02
    vision_config: dict | None = dataclasses.field(default=None, compare=False, hash=False)
    hf_config: dict | None = dataclasses.field(default=None, compare=False, hash=False, repr=False)
    # run-time options
    dtype: str = "float32"
    param_dtype: str = "float32"
    fuse_qkv: bool = True
    fuse_gate_up: bool = True
    remat_policy: str | None = None
    attention_impl: str | None = None
    with_vision: bool = True

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type {self.model_type!r} is not one of {MODEL_TYPES}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not a multiple of num_kv_heads {self.num_kv_heads}")
        if 2 * sum(self.mrope_section) != self.head_dim:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {self.head_dim // 2}")
        if self.remat_policy not in (None, "full", "dots"):
            raise ValueError(f"remat_policy {self.remat_policy!r} not in (None, 'full', 'dots')")
        for name in ("dtype", "param_dtype"):
            jnp.dtype(getattr(self, name))  # raises on an unknown dtype name

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def spatial_merge_size(self) -> int:
        return int((self.vision_config or {}).get("spatial_merge_size", 2))

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def weight_dtype(self):
        return jnp.dtype(self.param_dtype)

    def replace(self, **changes) -> Qwen2VLConfig:
        return dataclasses.replace(self, **changes)

    # -- HF config.json ------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, source: str = "config.json", **options) -> Qwen2VLConfig:
        """Parses an HF config dict (flat or nested); `options` set the run-time fields."""
        model_type = hf.get("model_type")
        if model_type not in MODEL_TYPES:
            raise ValueError(f"{source}: model_type {model_type!r} is not one of {MODEL_TYPES}")
        text = hf.get("text_config") or {}
        if not isinstance(text, dict):
            raise ValueError(f"{source}: text_config must be an object, got {type(text).__name__}")

        def get(key, default=KeyError):
            if key in text and text[key] is not None:
                return text[key]
            if key in hf and hf[key] is not None:
                return hf[key]
            if default is KeyError:
                raise KeyError(f"{source}: required key {key!r} missing (looked in text_config and top level)")
            return default

        for key in _REQUIRED_TEXT:
            get(key)
        if get("hidden_act", "silu") != "silu":
            raise ValueError(f"{source}: hidden_act {get('hidden_act')!r} unsupported (only 'silu')")
        if get("use_sliding_window", False):
            raise NotImplementedError(f"{source}: use_sliding_window=true is not supported")
        rope = get("rope_parameters", None) or get("rope_scaling", None) or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", "mrope"):
            raise NotImplementedError(f"{source}: rope type {rope_type!r} is not supported")
        theta = rope.get("rope_theta", get("rope_theta", _TEXT_DEFAULTS["rope_theta"]))
        section = tuple(int(s) for s in rope.get("mrope_section", _TEXT_DEFAULTS["mrope_section"]))
        tie = bool(hf.get("tie_word_embeddings", False) or text.get("tie_word_embeddings", False))
        num_heads = int(get("num_attention_heads"))
        vision = hf.get("vision_config")
        return cls(
            model_type=model_type,
            vocab_size=int(get("vocab_size")),
            hidden_size=int(get("hidden_size")),
            intermediate_size=int(get("intermediate_size")),
            num_layers=int(get("num_hidden_layers")),
            num_heads=num_heads,
            num_kv_heads=int(get("num_key_value_heads", num_heads)),
            rms_norm_eps=float(get("rms_norm_eps", _TEXT_DEFAULTS["rms_norm_eps"])),
            rope_theta=float(theta),
            mrope_section=section,
            tie_word_embeddings=tie,
            image_token_id=int(hf.get("image_token_id", _TOP_DEFAULTS["image_token_id"])),
            video_token_id=int(hf.get("video_token_id", _TOP_DEFAULTS["video_token_id"])),
            vision_start_token_id=int(hf.get("vision_start_token_id", _TOP_DEFAULTS["vision_start_token_id"])),
            vision_end_token_id=int(hf.get("vision_end_token_id", _TOP_DEFAULTS["vision_end_token_id"])),
            initializer_range=float(get("initializer_range", _TEXT_DEFAULTS["initializer_range"])),
            vision_config=copy.deepcopy(vision) if vision is not None else None,
            hf_config=copy.deepcopy(hf),
            **options,
        )

    @classmethod
    def from_dir(cls, hf_dir: str | Path, **options) -> Qwen2VLConfig:
        path = Path(hf_dir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no config.json in the model directory")
        try:
            hf = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
        return cls.from_hf(hf, source=str(path), **options)

    def to_hf(self, torch_dtype: str | None = None) -> dict[str, Any]:
        """An HF config dict (nested, transformers-5 style) describing this architecture.
        Starts from the dict it was parsed from, so unknown keys survive a round trip."""
        hf = copy.deepcopy(self.hf_config) if self.hf_config else {}
        text = hf.get("text_config") if isinstance(hf.get("text_config"), dict) else None
        target = text if text is not None else hf
        target.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            rms_norm_eps=self.rms_norm_eps,
            hidden_act="silu",
        )
        if "rope_parameters" in target or not self.hf_config:
            target["rope_parameters"] = {
                "rope_type": "default",
                "rope_theta": self.rope_theta,
                "mrope_section": list(self.mrope_section),
            }
        else:
            target["rope_theta"] = self.rope_theta
            target["rope_scaling"] = {"type": "mrope", "mrope_section": list(self.mrope_section)}
        if text is not None and "tie_word_embeddings" in text:
            text["tie_word_embeddings"] = self.tie_word_embeddings
        hf.update(
            model_type=self.model_type,
            architectures=[("Qwen2VL" if self.model_type == "qwen2_vl" else "Qwen2_5_VL") + "ForConditionalGeneration"],
            tie_word_embeddings=self.tie_word_embeddings,
            image_token_id=self.image_token_id,
            video_token_id=self.video_token_id,
            vision_start_token_id=self.vision_start_token_id,
            vision_end_token_id=self.vision_end_token_id,
        )
        if self.vision_config is not None:
            hf["vision_config"] = copy.deepcopy(self.vision_config)
        if torch_dtype is not None:
            hf["torch_dtype"] = torch_dtype
            hf["dtype"] = torch_dtype
        return hf
