"""Configuration of Gemma 3 with vision (transformers' `Gemma3Config`, `model_type: gemma3`):
the language model's `Gemma3TextConfig` (which carries the run-time options), the SigLIP
tower's config, and the image-token ids. A photo becomes `mm_tokens_per_image` image tokens
(the tower's patches average-pooled), which the processor wraps in begin/end-of-image tokens.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

from rmpl_jax.models.gemma3.config import RUNTIME_FIELDS, Gemma3TextConfig, read_config
from rmpl_jax.models.gemma3.vision_config import SiglipVisionConfig

MODEL_TYPE = "gemma3"


@dataclasses.dataclass(frozen=True)
class Gemma3Config:
    """Gemma 3 with vision: `text`, `vision`, image-token ids and tokens per photo."""

    text: Gemma3TextConfig
    vision: SiglipVisionConfig
    image_token_id: int
    boi_token_id: int
    eoi_token_id: int
    tokens_per_image: int
    hf_config: dict | None = dataclasses.field(default=None, compare=False, hash=False, repr=False)

    model_type = MODEL_TYPE

    def __post_init__(self):
        side = math.isqrt(self.tokens_per_image)
        grid = self.vision.image_size // self.vision.patch_size
        if side * side != self.tokens_per_image or grid % side:
            raise ValueError(
                f"mm_tokens_per_image {self.tokens_per_image} must be a square whose side divides the tower's "
                f"{grid} patches per side"
            )

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

    def replace(self, **changes) -> Gemma3Config:
        """Run-time fields (`RUNTIME_FIELDS`) go to the language model's config."""
        runtime = {k: changes.pop(k) for k in list(changes) if k in RUNTIME_FIELDS}
        text = self.text.replace(**runtime) if runtime else self.text
        return dataclasses.replace(self, text=text, **changes)

    # -- HF config.json ------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, source: str = "config.json", **options) -> Gemma3Config:
        """Parses an HF Gemma 3 config dict; `options` set the run-time fields."""
        if hf.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{source}: model_type {hf.get('model_type')!r} is not {MODEL_TYPE!r}")
        for key in ("text_config", "vision_config"):
            if not isinstance(hf.get(key), dict):
                raise KeyError(f"{source}: {key!r} missing or not an object")
        bad = set(options) - set(RUNTIME_FIELDS)
        if bad:
            raise TypeError(f"unknown Gemma 3 options {sorted(bad)}; known: {RUNTIME_FIELDS}")
        text_hf = {k: v for k, v in hf["text_config"].items() if v is not None}
        text_hf.setdefault("model_type", "gemma3_text")
        text_hf.setdefault("vocab_size", 262208)  # transformers' Gemma3TextConfig default
        text_hf.setdefault("tie_word_embeddings", hf.get("tie_word_embeddings", True))
        text = Gemma3TextConfig.from_hf(text_hf, source=f"{source} text_config", **options)
        vision = SiglipVisionConfig.from_hf(hf["vision_config"], source=source)
        image_token = int(hf.get("image_token_index", hf.get("image_token_id", 262144)))
        try:
            return cls(
                text=text,
                vision=vision,
                image_token_id=image_token,
                boi_token_id=int(hf.get("boi_token_index", hf.get("boi_token_id", 255999))),
                eoi_token_id=int(hf.get("eoi_token_index", hf.get("eoi_token_id", 256000))),
                tokens_per_image=int(hf.get("mm_tokens_per_image", 256)),
                hf_config=copy.deepcopy(hf),
            )
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_dir(cls, hf_dir: str | Path, **options) -> Gemma3Config:
        return cls.from_hf(read_config(hf_dir), source=str(Path(hf_dir) / "config.json"), **options)

    def to_hf(self, torch_dtype: str | None = None) -> dict[str, Any]:
        """An HF config dict transformers loads, starting from the dict it was parsed from."""
        hf = copy.deepcopy(self.hf_config) if self.hf_config else {}
        text = self.text.to_hf(torch_dtype=torch_dtype)
        text.pop("architectures", None)
        hf.update(
            model_type=MODEL_TYPE,
            architectures=["Gemma3ForConditionalGeneration"],
            text_config=text,
            vision_config=self.vision.to_hf(),
            image_token_index=self.image_token_id,
            boi_token_index=self.boi_token_id,
            eoi_token_index=self.eoi_token_id,
            mm_tokens_per_image=self.tokens_per_image,
            tie_word_embeddings=self.tie_word_embeddings,
        )
        for alias in ("image_token_id", "boi_token_id", "eoi_token_id"):
            hf.pop(alias, None)
        if torch_dtype is not None:
            hf["torch_dtype"] = torch_dtype
            hf["dtype"] = torch_dtype
        return hf
