"""Example -> model features: chat-formatted prompt tokens, target tokens with the loss
mask on them (and the processor's closing end-of-turn token), pixels for image examples."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rmpl_jax.m2e2.grammar import Example


def load_image(path: str, side: int | None) -> Image.Image:
    """RGB image, resized to side x side when `side` is set (static shapes for training)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    return image.resize((side, side), Image.BICUBIC) if side else image


def user_messages(example: Example) -> list[dict]:
    content = [{"type": "image"}] if example.image else []
    content.append({"type": "text", "text": example.prompt})
    return [{"role": "user", "content": content}]


class Featurizer:
    """Callable used by the Grain pipeline; `image_side` as in `load_image`. `processor`: a
    family's processor (`models.family.Processor`: tokenizer, chat template, `end_of_turn`,
    images -> `pixel_values` and, where the family has one, a static `image_grid_thw`)."""

    def __init__(self, processor, image_side: int | None = None):
        self.processor = processor
        self.image_side = image_side

    def prompt_features(self, example: Example) -> dict[str, np.ndarray]:
        """Prompt tokens (generation prompt included) and pixels; used by decoding too."""
        text = self.processor.apply_chat_template(user_messages(example), add_generation_prompt=True)
        images = [load_image(example.image, self.image_side)] if example.image else None
        enc = self.processor(text, images, padding=False)
        out = {"input_ids": enc["input_ids"][0].astype(np.int32)}
        if images:
            out["pixel_values"] = enc["pixel_values"].astype(np.float32)
            if "image_grid_thw" in enc:
                out["image_grid_thw"] = enc["image_grid_thw"][0]
        return out

    def __call__(self, example: Example) -> dict[str, np.ndarray]:
        out = self.prompt_features(example)
        target = self.processor.tokenizer(example.target + self.processor.end_of_turn, add_special_tokens=False)
        target_ids = np.asarray(target["input_ids"], np.int32)
        prompt_len = len(out["input_ids"])
        out["input_ids"] = np.concatenate([out["input_ids"], target_ids])
        out["loss_mask"] = np.concatenate([np.zeros(prompt_len, np.int32), np.ones(len(target_ids), np.int32)])
        return out
