"""Example -> model features: chat-formatted prompt tokens, target tokens with the loss
mask on them (and the closing end-of-turn token), pixels for image examples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.grammar import Example

END_OF_TURN = "<|im_end|>"


def load_image(path: str, side: int | None) -> Image.Image:
    """RGB image, resized to side x side when `side` is set (static shapes for training).
    A photo that cannot be decoded raises DataError naming it (`data/images.py` checks
    photos up front; this catches one that changed since)."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e}); replace the file") from None
    return image.resize((side, side), Image.BICUBIC) if side else image


def user_messages(example: Example) -> list[dict]:
    content = [{"type": "image"}] if example.image else []
    content.append({"type": "text", "text": example.prompt})
    return [{"role": "user", "content": content}]


class Featurizer:
    """Callable used by the Grain pipeline; `image_side` as in `load_image`."""

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
            out["image_grid_thw"] = enc["image_grid_thw"][0]
        return out

    def token_lengths(self, examples: Sequence[Example]) -> np.ndarray:
        """`len(self(example)["input_ids"])` for each example, without decoding photos: texts
        are tokenized in one batch, and every photo adds the same number of tokens (all are
        resized to `image_side`), measured once on the first example with a photo."""
        if not examples:
            return np.zeros(0, np.int64)
        tokenizer = self.processor.tokenizer
        prompts = [self.processor.apply_chat_template(user_messages(e), add_generation_prompt=True) for e in examples]
        prompt_ids = tokenizer(prompts)["input_ids"]
        target_ids = tokenizer([e.target + END_OF_TURN for e in examples], add_special_tokens=False)["input_ids"]
        lengths = np.asarray([len(p) + len(t) for p, t in zip(prompt_ids, target_ids)], np.int64)
        with_image = np.asarray([e.image is not None for e in examples])
        if with_image.any():
            if not self.image_side:
                raise ValueError("token_lengths of image examples needs image_side (photo sizes differ otherwise)")
            first = int(np.argmax(with_image))
            lengths[with_image] += len(self(examples[first])["input_ids"]) - lengths[first]
        return lengths

    def __call__(self, example: Example) -> dict[str, np.ndarray]:
        out = self.prompt_features(example)
        target = self.processor.tokenizer(example.target + END_OF_TURN, add_special_tokens=False)
        target_ids = np.asarray(target["input_ids"], np.int32)
        prompt_len = len(out["input_ids"])
        out["input_ids"] = np.concatenate([out["input_ids"], target_ids])
        out["loss_mask"] = np.concatenate([np.zeros(prompt_len, np.int32), np.ones(len(target_ids), np.int32)])
        return out
