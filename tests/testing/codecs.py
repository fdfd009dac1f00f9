"""Every family's box codec at its default pixel budget, by name, for tests over all codecs."""

from __future__ import annotations

from rmpl_jax.m2e2.boxes import BoxCodec
from rmpl_jax.models.llava.boxes import LlavaBoxes
from rmpl_jax.models.qwen2_vl.boxes import Qwen2VLBoxes, Qwen25VLBoxes

CODECS: dict[str, BoxCodec] = {"qwen2_vl": Qwen2VLBoxes(), "qwen2_5_vl": Qwen25VLBoxes(), "llava": LlavaBoxes()}


def codec_for(name: str) -> BoxCodec:
    """The codec of a family name ('qwen2_vl', 'qwen2_5_vl', 'llava')."""
    return CODECS[name]
