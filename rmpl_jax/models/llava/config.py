"""Configuration of the LLaVA family (transformers' `LlavaForConditionalGeneration`,
LLaVA-1.5): the CLIP vision tower's config, the Llama language model's (`LlamaConfig`), and
the glue between them (projector, image token, which tower layer feeds the projector).

`vision_feature_layer` counts like an index into HF's `hidden_states` tuple of the tower
(entry 0: the embeddings after the pre-LayerNorm, entry i: after block i), so -2 (LLaVA-1.5)
is the output of the second-to-last block; a list concatenates several layers' features.
`vision_feature_select_strategy` "default" drops the class token, "full" keeps it.
Run-time options (dtypes, fusion, remat, attention backend) live on the language model's
config and apply to the whole model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rmpl_jax.models.layers import ACTIVATIONS
from rmpl_jax.models.llama.config import LlamaConfig

MODEL_TYPE = "llava"
VISION_MODEL_TYPE = "clip_vision_model"
SELECT_STRATEGIES = ("default", "full")
# Fields of LlamaConfig that are run-time options rather than architecture.
RUNTIME_FIELDS = ("dtype", "param_dtype", "fuse_qkv", "fuse_gate_up", "remat_policy", "attention_impl")
# transformers' defaults for keys a config.json may leave out (llava-hf's files rely on them)
TEXT_DEFAULTS = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "rms_norm_eps": 1e-6,
}
VISION_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 32,
    "num_channels": 3,
    "layer_norm_eps": 1e-5,
    "hidden_act": "quick_gelu",
    "initializer_range": 0.02,
}


@dataclasses.dataclass(frozen=True)
class ClipVisionConfig:
    """The CLIP ViT (pre-LN, class token, learned absolute positions) of an HF `vision_config`."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    image_size: int
    patch_size: int
    num_channels: int = 3
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"vision hidden_size {self.hidden_size} not a multiple of {self.num_heads} heads")
        if self.image_size % self.patch_size:
            raise ValueError(f"vision image_size {self.image_size} not a multiple of patch_size {self.patch_size}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"vision hidden_act {self.hidden_act!r} unsupported; known: {sorted(ACTIVATIONS)}")

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
    def from_hf(cls, hf: Mapping[str, Any], *, source: str = "config.json") -> ClipVisionConfig:
        model_type = hf.get("model_type", VISION_MODEL_TYPE)
        if model_type != VISION_MODEL_TYPE:
            raise ValueError(f"{source}: vision_config.model_type {model_type!r} is not {VISION_MODEL_TYPE!r}")
        hf = {**VISION_DEFAULTS, **{k: v for k, v in hf.items() if v is not None}}
        try:
            return cls(
                hidden_size=int(hf["hidden_size"]),
                intermediate_size=int(hf["intermediate_size"]),
                num_layers=int(hf["num_hidden_layers"]),
                num_heads=int(hf["num_attention_heads"]),
                image_size=int(hf["image_size"]),
                patch_size=int(hf["patch_size"]),
                num_channels=int(hf["num_channels"]),
                layer_norm_eps=float(hf["layer_norm_eps"]),
                hidden_act=str(hf["hidden_act"]),
                initializer_range=float(hf["initializer_range"]),
            )
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None


def _feature_layers(value: Any, depth: int, source: str) -> tuple[int, ...]:
    """HF vision_feature_layer (int or list; negative counts from the end of the depth + 1
    hidden states) -> non-negative indices into those hidden states."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{source}: vision_feature_layer must be an int or a list of ints, got {value!r}")
    out = []
    for v in values:
        index = v if v >= 0 else depth + 1 + v
        if not 0 <= index <= depth:
            raise ValueError(f"{source}: vision_feature_layer {v} is outside the tower's {depth} layers")
        out.append(index)
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class LlavaConfig:
    """LLaVA: `text` (the Llama LM, carrying the run-time options), `vision` (CLIP),
    `feature_layers` (indices into the tower's hidden states, see the module docstring)."""

    text: LlamaConfig
    vision: ClipVisionConfig
    image_token_id: int
    feature_layers: tuple[int, ...]
    select_strategy: str = "default"
    projector_hidden_act: str = "gelu"
    projector_bias: bool = True
    hf_config: dict | None = dataclasses.field(default=None, compare=False, hash=False, repr=False)

    model_type = MODEL_TYPE

    def __post_init__(self):
        if self.select_strategy not in SELECT_STRATEGIES:
            raise ValueError(f"vision_feature_select_strategy {self.select_strategy!r} not in {SELECT_STRATEGIES}")
        if self.projector_hidden_act not in ACTIVATIONS:
            raise ValueError(f"projector_hidden_act {self.projector_hidden_act!r} unsupported")
        if not 0 <= self.image_token_id < self.text.vocab_size:
            raise ValueError(f"image_token_id {self.image_token_id} outside the vocabulary ({self.text.vocab_size})")

    # the run-time view generic code reads
    @property
    def compute_dtype(self):
        return self.text.compute_dtype

    @property
    def weight_dtype(self):
        return self.text.weight_dtype

    @property
    def dtype(self) -> str:
        return self.text.dtype

    @property
    def param_dtype(self) -> str:
        return self.text.param_dtype

    @property
    def vocab_size(self) -> int:
        return self.text.vocab_size

    @property
    def tie_word_embeddings(self) -> bool:
        return self.text.tie_word_embeddings

    @property
    def tokens_per_image(self) -> int:
        """Image tokens one photo expands to: its patches, plus the class token for "full"."""
        return self.vision.num_patches + (1 if self.select_strategy == "full" else 0)

    @property
    def feature_width(self) -> int:
        """Width of the tower features the projector takes (several layers concatenate)."""
        return self.vision.hidden_size * len(self.feature_layers)

    def replace(self, **changes) -> LlavaConfig:
        """Run-time fields (`RUNTIME_FIELDS`) go to the language model's config."""
        runtime = {k: changes.pop(k) for k in list(changes) if k in RUNTIME_FIELDS}
        text = self.text.replace(**runtime) if runtime else self.text
        return dataclasses.replace(self, text=text, **changes)

    # -- HF config.json ------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, source: str = "config.json", **options) -> LlavaConfig:
        """Parses an HF LLaVA config dict; `options` set the run-time fields."""
        if hf.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{source}: model_type {hf.get('model_type')!r} is not {MODEL_TYPE!r}")
        for key in ("text_config", "vision_config"):
            if not isinstance(hf.get(key), dict):
                raise KeyError(f"{source}: {key!r} missing or not an object")
        text_hf = {**TEXT_DEFAULTS, **{k: v for k, v in hf["text_config"].items() if v is not None}}
        text_hf.setdefault("model_type", "llama")
        if hf.get("tie_word_embeddings"):
            text_hf["tie_word_embeddings"] = True
        bad = set(options) - set(RUNTIME_FIELDS)
        if bad:
            raise TypeError(f"unknown LLaVA options {sorted(bad)}; known: {RUNTIME_FIELDS}")
        text = LlamaConfig.from_hf(text_hf, source=f"{source} text_config", **options)
        vision = ClipVisionConfig.from_hf(hf["vision_config"], source=source)
        image_token = hf.get("image_token_id", hf.get("image_token_index", 32000))
        layer = hf.get("vision_feature_layer", -2)
        feature_layers = _feature_layers(layer, vision.num_layers, source)
        try:
            return cls(
                text=text,
                vision=vision,
                image_token_id=int(image_token),
                feature_layers=feature_layers,
                select_strategy=str(hf.get("vision_feature_select_strategy", "default")),
                projector_hidden_act=str(hf.get("projector_hidden_act", "gelu")),
                projector_bias=bool(hf.get("multimodal_projector_bias", True)),
                hf_config=copy.deepcopy(hf),
            )
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_dir(cls, hf_dir: str | Path, **options) -> LlavaConfig:
        path = Path(hf_dir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no config.json in the model directory")
        try:
            hf = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
        return cls.from_hf(hf, source=str(path), **options)

    def to_hf(self, torch_dtype: str | None = None) -> dict[str, Any]:
        """An HF config dict transformers loads, starting from the dict it was parsed from."""
        hf = copy.deepcopy(self.hf_config) if self.hf_config else {}
        text = self.text.to_hf(torch_dtype=torch_dtype)
        text.pop("architectures", None)
        hf.update(
            model_type=MODEL_TYPE,
            architectures=["LlavaForConditionalGeneration"],
            text_config=text,
            image_token_index=self.image_token_id,
            vision_feature_select_strategy=self.select_strategy,
            projector_hidden_act=self.projector_hidden_act,
            multimodal_projector_bias=self.projector_bias,
            tie_word_embeddings=self.tie_word_embeddings,
        )
        hf.pop("image_token_id", None)
        if torch_dtype is not None:
            hf["torch_dtype"] = torch_dtype
            hf["dtype"] = torch_dtype
        return hf
