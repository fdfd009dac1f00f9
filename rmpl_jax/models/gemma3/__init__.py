"""Gemma 3 (`Gemma3ForCausalLM`, `Gemma3ForConditionalGeneration`): configs, models,
checkpoints, processor, box codec, presets."""

from rmpl_jax.models.gemma3.config import Gemma3TextConfig
from rmpl_jax.models.gemma3.family import GEMMA3, GEMMA3_TEXT
from rmpl_jax.models.gemma3.model import Gemma3
from rmpl_jax.models.gemma3.multimodal_config import Gemma3Config
from rmpl_jax.models.gemma3.processor import Gemma3Processor
from rmpl_jax.models.gemma3.text_model import Gemma3Text

__all__ = ["GEMMA3", "GEMMA3_TEXT", "Gemma3", "Gemma3Config", "Gemma3Processor", "Gemma3Text", "Gemma3TextConfig"]
