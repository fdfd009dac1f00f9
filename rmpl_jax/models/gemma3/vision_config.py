"""The SigLIP vision tower's configuration (transformers' `SiglipVisionConfig`, model_type
`siglip_vision_model`), as Gemma 3's `vision_config` gives it.

Keys a Hub config.json leaves out take transformers' defaults (`hidden_act`
gelu_pytorch_tanh, `layer_norm_eps` 1e-6, `num_channels` 3); the sizes must be there. Gemma 3
uses the tower's last hidden state, so a pooling head (`vision_use_head: true`) is refused, as
are non-square images or patches. Dropout (`attention_dropout`) is not applied.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from rmpl_jax.models.layers import ACTIVATIONS

MODEL_TYPE = "siglip_vision_model"
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
# transformers' SiglipVisionConfig defaults for the keys Gemma 3's config.json files omit
DEFAULTS = {"num_channels": 3, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh", "initializer_range": 0.02}


def _field(hf: Mapping[str, Any], key: str, kind: type, source: str):
    """hf[key] as `kind`, or an error naming the key."""
    value = hf[key]
    if isinstance(value, bool) and kind is not bool:
        value = None  # int(True) would pass silently
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: vision_config.{key} {hf[key]!r} is not a valid {kind.__name__}") from None


def _square(hf: Mapping[str, Any], key: str, source: str) -> int:
    """An int, or a [n, n] list (HF allows either) -> n; anything else names the key."""
    value = hf[key]
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{source}: vision_config.{key} {value!r}: only square sizes are supported")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{source}: vision_config.{key} must be a positive int, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class SiglipVisionConfig:
    """A SigLIP ViT without head: patch embedding with bias, learned positions (no class
    token), pre-LN blocks, post-LayerNorm. `hf_config` keeps the parsed dict for export."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    image_size: int
    patch_size: int
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    initializer_range: float = 0.02
    hf_config: dict | None = dataclasses.field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self):
        sizes = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "image_size", "patch_size")
        for name in (*sizes, "num_channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"vision {name} must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"vision_config.hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_heads}"
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"vision_config.image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"vision_config.hidden_act {self.hidden_act!r} unsupported; known: {sorted(ACTIVATIONS)}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any], *, source: str = "config.json") -> SiglipVisionConfig:
        """Parses Gemma 3's `vision_config` dict; errors name `source` and the key."""
        model_type = hf.get("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ValueError(f"{source}: vision_config.model_type {model_type!r} is not {MODEL_TYPE!r}")
        if hf.get("vision_use_head"):
            raise ValueError(
                f"{source}: vision_config.vision_use_head is true; Gemma 3 uses the tower without its pooling head"
            )
        missing = [k for k in REQUIRED if hf.get(k) is None]
        if missing:
            raise KeyError(f"{source}: vision_config lacks {', '.join(repr(k) for k in missing)}")
        merged = {**DEFAULTS, **{k: v for k, v in hf.items() if v is not None}}
        fields = dict(
            hidden_size=_field(merged, "hidden_size", int, source),
            intermediate_size=_field(merged, "intermediate_size", int, source),
            num_layers=_field(merged, "num_hidden_layers", int, source),
            num_heads=_field(merged, "num_attention_heads", int, source),
            image_size=_square(merged, "image_size", source),
            patch_size=_square(merged, "patch_size", source),
            num_channels=_field(merged, "num_channels", int, source),
            layer_norm_eps=_field(merged, "layer_norm_eps", float, source),
            hidden_act=_field(merged, "hidden_act", str, source),
            initializer_range=_field(merged, "initializer_range", float, source),
        )
        try:
            return cls(**fields, hf_config=copy.deepcopy(dict(hf)))
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    def to_hf(self) -> dict[str, Any]:
        """The dict it was parsed from (unknown keys kept), with this config's values."""
        hf = copy.deepcopy(self.hf_config) if self.hf_config else {}
        hf.update(
            model_type=MODEL_TYPE,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
            layer_norm_eps=self.layer_norm_eps,
            hidden_act=self.hidden_act,
            vision_use_head=False,  # transformers defaults to true: a head the checkpoint lacks
        )
        if "initializer_range" in hf:
            hf["initializer_range"] = self.initializer_range
        return hf
