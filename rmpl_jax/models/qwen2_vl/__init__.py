"""Qwen2-VL and Qwen2.5-VL: config, model, vision tower, checkpoints, processor, presets."""

from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig
from rmpl_jax.models.qwen2_vl.family import QWEN2_VL
from rmpl_jax.models.qwen2_vl.model import Qwen2VL, abstract_model, build
from rmpl_jax.models.qwen2_vl.params import export_hf, load_hf
from rmpl_jax.models.qwen2_vl.processor import QwenProcessor

__all__ = ["QWEN2_VL", "Qwen2VL", "Qwen2VLConfig", "QwenProcessor", "abstract_model", "build", "export_hf", "load_hf"]
