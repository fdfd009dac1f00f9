"""Gemma 3 inputs: the Gemma tokenizer with the directory's chat template, image-token
expansion, and the tower's image processing (`gemma3/images.py`), all returning numpy.

Prompts: the chat template writes a photo as the begin-of-image token (`<start_of_image>`);
each becomes `\\n\\n<start_of_image>` + `tokens_per_image` image tokens + `<end_of_image>\\n\\n`
(transformers' `Gemma3Processor`, without pan-and-scan). The token strings are read off the
tokenizer at config.json's ids. The chat template is the directory's, the tokenizer's, or
`DEFAULT_CHAT_TEMPLATE` (Gemma 3's turn format); the end of turn is `<end_of_turn>`, found as
for Llama (`llama/processor.py`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from rmpl_jax.models.gemma3.images import preprocess
from rmpl_jax.models.gemma3.multimodal_config import Gemma3Config
from rmpl_jax.models.llama.processor import _directory_template
from rmpl_jax.models.photo_processor import PhotoTextProcessor

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")

# Gemma 3's turns (`<start_of_turn>user ... <end_of_turn>`, the assistant as `model`), a
# system message folded into the first user turn, photos as `<start_of_image>`.
DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set ns = namespace(prefix='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- for part in message['content'] -%}{%- set ns.prefix = ns.prefix + part['text'] + '\\n\\n' -%}{%- endfor -%}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' + ns.prefix }}"
    "{%- set ns.prefix = '' -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<start_of_image>' }}{%- else -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


class Gemma3Processor(PhotoTextProcessor):
    """Tokenizer + chat template + image processing of a Gemma 3 directory; build with
    `Gemma3Processor.from_dir`."""

    def __init__(self, tokenizer, config: Gemma3Config, *, chat_template: str | None = None, source: str = "<memory>"):
        ids = {"boi": config.boi_token_id, "image": config.image_token_id, "eoi": config.eoi_token_id}
        tokens = {}
        for what, token_id in ids.items():
            token = tokenizer.convert_ids_to_tokens(token_id)
            if token is None or tokenizer.convert_tokens_to_ids(token) != token_id:
                raise ValueError(f"{source}: config.json's {what} token id {token_id} is not a token of the tokenizer")
            tokens[what] = token
        self.image_mark = tokens["boi"]
        self.image_sequence = f"\n\n{tokens['boi']}{tokens['image'] * config.tokens_per_image}{tokens['eoi']}\n\n"
        self.image_size = config.vision.image_size
        super().__init__(
            tokenizer, chat_template=chat_template or tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE, source=source
        )

    @classmethod
    def from_dir(cls, hf_dir: str | pathlib.Path) -> Gemma3Processor:
        hf_dir = pathlib.Path(hf_dir)
        config = Gemma3Config.from_dir(hf_dir)
        if not any((hf_dir / name).is_file() for name in _TOKENIZER_FILES):
            raise FileNotFoundError(f"{hf_dir}: no tokenizer files ({', '.join(_TOKENIZER_FILES)})")
        tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
        return cls(tokenizer, config, chat_template=_directory_template(hf_dir), source=str(hf_dir))

    def expand_image_tokens(self, text: str) -> str:
        """Each begin-of-image mark -> the photo's whole token sequence."""
        return text.replace(self.image_mark, self.image_sequence)

    def pixel_values(self, images: Sequence[Any]) -> np.ndarray:
        return preprocess(list(images), self.image_size)
