"""Configuration of the Qwen2-VL / Qwen2.5-VL vision tower, parsed from an HF `vision_config`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rmpl_jax.models.layers import ACTIVATIONS

VARIANTS = ("qwen2_vl", "qwen2_5_vl")


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
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"vision_config.hidden_act={self.hidden_act!r} is not supported; known: {sorted(ACTIVATIONS)}"
            )
        for key in (
            "depth",
            "width",
            "num_heads",
            "mlp_dim",
            "out_dim",
            "in_channels",
            "patch_size",
            "temporal_patch_size",
            "spatial_merge_size",
        ):
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
    def from_hf(cls, vision_config: Mapping[str, Any] | Any, model_type: str | None = None) -> VisionConfig:
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
        rope_theta = float(
            (rope.get("rope_theta") if isinstance(rope, Mapping) else None) or d.get("rope_theta") or 10000.0
        )
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
