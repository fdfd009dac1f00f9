"""LLaVA-1.5 (`LlavaForConditionalGeneration`): config, CLIP tower, model, checkpoints,
processor, presets."""

from rmpl_jax.models.llava.config import ClipVisionConfig, LlavaConfig
from rmpl_jax.models.llava.family import LLAVA
from rmpl_jax.models.llava.model import Llava, abstract_model, build
from rmpl_jax.models.llava.params import export_hf, load_hf
from rmpl_jax.models.llava.processor import LlavaProcessor

__all__ = [
    "LLAVA",
    "ClipVisionConfig",
    "Llava",
    "LlavaConfig",
    "LlavaProcessor",
    "abstract_model",
    "build",
    "export_hf",
    "load_hf",
]
