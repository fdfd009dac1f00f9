"""Llama (`LlamaForCausalLM`): config, model, checkpoints, text processor, presets."""

from rmpl_jax.models.llama.config import LlamaConfig
from rmpl_jax.models.llama.family import LLAMA
from rmpl_jax.models.llama.model import Llama, abstract_model, build
from rmpl_jax.models.llama.params import export_hf, load_hf
from rmpl_jax.models.llama.processor import TextProcessor

__all__ = ["LLAMA", "Llama", "LlamaConfig", "TextProcessor", "abstract_model", "build", "export_hf", "load_hf"]
