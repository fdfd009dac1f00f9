"""The processor of a model whose prompts mark each photo with one token that expands to a
run of image tokens (LLaVA's `<image>`, Gemma 3's `<start_of_image>`): chat templates see
content as image/text parts, the marks are counted against the photos, the expanded texts
are tokenized and the photos become `pixel_values`. A family's subclass names its mark, its
expansion and its pixel processing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rmpl_jax.models.llama.processor import TextProcessor, as_texts


def as_parts(messages: list[dict]) -> list[dict]:
    """String content -> one text part, so every template sees a list of parts."""
    return [
        {**m, "content": [{"type": "text", "text": m["content"]}]} if isinstance(m.get("content"), str) else m
        for m in messages
    ]


class PhotoTextProcessor(TextProcessor):
    """`TextProcessor` plus photos; subclasses set `image_mark` and implement
    `expand_image_tokens` and `pixel_values`."""

    takes_images = True
    image_keys = ("pixel_values",)  # the model's image inputs among `__call__`'s outputs
    image_mark: str  # the token a chat template writes for one photo

    def expand_image_tokens(self, text: str) -> str:
        """Each photo mark -> the photo's whole token run."""
        raise NotImplementedError

    def pixel_values(self, images: Sequence[Any]) -> np.ndarray:
        """[n, C, S, S] float32 of PIL images (or HxWxC arrays)."""
        raise NotImplementedError

    def template_messages(self, messages: list[dict]) -> list[dict]:
        """Messages as the chat template takes them: content as image/text parts."""
        return as_parts(messages)

    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence[Any] | None = None,
        *,
        padding: bool | str = True,
        padding_side: str | None = None,
    ) -> dict[str, np.ndarray]:
        """input_ids, attention_mask [B, T] and, with images, pixel_values [n, C, S, S]; the
        texts' photo marks, in order, are the images."""
        texts = as_texts(text)
        marks = sum(t.count(self.image_mark) for t in texts)
        n_images = len(images or ())
        if marks != n_images:
            raise ValueError(f"{self.source}: the text holds {marks} {self.image_mark} marks for {n_images} images")
        expanded = [self.expand_image_tokens(t) for t in texts]
        out = self.tokenize(expanded, padding=padding, padding_side=padding_side)
        if n_images:
            out["pixel_values"] = self.pixel_values(images)
        return out
