"""LLaVA-1.5 inputs: the Llama tokenizer with a chat template that puts `<image>` before the
user's text, image-token expansion, and CLIP image processing, all returning numpy.

Images: pad to a square (centred, filled with the CLIP mean colour, as LLaVA-1.5 trains),
resize the shortest side to the tower's `image_size` (bicubic), centre crop, scale to 0-1 and
normalise with the CLIP mean and std (transformers' `LlavaImageProcessorPil` does the pixel
work). Padding is always on: the LLaVA box codec (`m2e2/boxes.py`) writes coordinates of the
padded square. `preprocessor_config.json` may change the mean, std, size and resampling.

Prompts: each `<image>` of the text becomes `tokens_per_image` image tokens (the tower's
patches, plus the class token for the "full" strategy). The chat template is the directory's,
the tokenizer's, or `DEFAULT_CHAT_TEMPLATE` (LLaVA-1.5's Vicuna v1 format:
`USER: <image>\\n... ASSISTANT: ...</s>`). The end-of-turn token is found as for Llama
(`llama/processor.py`): the special token after an assistant message, else eos.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoTokenizer
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

from rmpl_jax.models.llama.processor import _directory_template
from rmpl_jax.models.llava.config import LlavaConfig
from rmpl_jax.models.photo_processor import PhotoTextProcessor

IMAGE_TOKEN = "<image>"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
_PIXEL_KEYS = ("image_mean", "image_std", "resample", "rescale_factor")

DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token or '' }}"
    "{%- for message in messages -%}"
    "{%- set ns = namespace(body='') -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{%- set ns.body = ns.body + '<image>\\n' -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{%- set ns.body = ns.body + part['text'] -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if message['role'] == 'system' -%}{{ ns.body + ' ' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'USER: ' + ns.body + ' ' }}"
    "{%- else -%}{{ 'ASSISTANT: ' + ns.body + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)


def image_processor(hf_dir: str | pathlib.Path, config: LlavaConfig) -> LlavaImageProcessorPil:
    """CLIP image processing for the tower's `image_size`, padding to a square first."""
    side = config.vision.image_size
    kwargs: dict[str, Any] = {}
    path = pathlib.Path(hf_dir) / "preprocessor_config.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
        kwargs = {k: saved[k] for k in _PIXEL_KEYS if k in saved}
    return LlavaImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}, do_pad=True, **kwargs
    )


def pixel_values(processor: LlavaImageProcessorPil, images: Sequence[Any]) -> np.ndarray:
    """[n_images, C, S, S] float32 of PIL images (or HxWxC arrays)."""
    return np.asarray(processor(list(images), return_tensors="np")["pixel_values"], np.float32)


class LlavaProcessor(PhotoTextProcessor):
    """Tokenizer + chat template + image processing of a LLaVA directory; build with
    `LlavaProcessor.from_dir`."""

    image_mark = IMAGE_TOKEN

    def __init__(
        self,
        tokenizer,
        images: LlavaImageProcessorPil,
        *,
        image_token_id: int,
        tokens_per_image: int,
        chat_template: str | None = None,
        source: str = "<memory>",
    ):
        found = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if found != image_token_id:
            raise ValueError(
                f"{source}: the tokenizer has {IMAGE_TOKEN!r} as id {found}, config.json's image_token_index "
                f"is {image_token_id}"
            )
        self.image_processor = images
        self.image_token_id = image_token_id
        self.tokens_per_image = tokens_per_image
        super().__init__(
            tokenizer, chat_template=chat_template or tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE, source=source
        )

    @classmethod
    def from_dir(cls, hf_dir: str | pathlib.Path) -> LlavaProcessor:
        hf_dir = pathlib.Path(hf_dir)
        config = LlavaConfig.from_dir(hf_dir)
        if not any((hf_dir / name).is_file() for name in _TOKENIZER_FILES):
            raise FileNotFoundError(f"{hf_dir}: no tokenizer files ({', '.join(_TOKENIZER_FILES)})")
        tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
        return cls(
            tokenizer,
            image_processor(hf_dir, config),
            image_token_id=config.image_token_id,
            tokens_per_image=config.tokens_per_image,
            chat_template=_directory_template(hf_dir),
            source=str(hf_dir),
        )

    def expand_image_tokens(self, text: str) -> str:
        """Each `<image>` -> `tokens_per_image` of them."""
        return text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.tokens_per_image)

    def pixel_values(self, images: Sequence[Any]) -> np.ndarray:
        return pixel_values(self.image_processor, images)
