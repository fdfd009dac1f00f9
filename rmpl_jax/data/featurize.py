"""Example -> model features: chat-formatted prompt tokens, target tokens with the loss
mask on them (and the processor's closing end-of-turn token), pixels for image examples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from rmpl_jax.data.images import open_photo
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.grammar import Example


def load_image(path: str, side: int | None) -> Image.Image:
    """RGB image, resized to side x side when `side` is set (static shapes for training).
    A photo that cannot be decoded raises DataError naming it (`data/images.py` checks
    photos up front; this catches one that changed since)."""
    try:
        with open_photo(path) as image:
            image = image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e}); replace the file") from None
    return image.resize((side, side), Image.BICUBIC) if side else image


def user_messages(example: Example) -> list[dict]:
    content = [{"type": "image"}] if example.image else []
    content.append({"type": "text", "text": example.prompt})
    return [{"role": "user", "content": content}]


class Featurizer:
    """Callable used by the Grain pipeline; `image_side` as in `load_image`. `processor`: a
    family's processor (`models.family.Processor`: tokenizer, chat template, `end_of_turn`,
    images -> the family's image inputs, kept under the processor's own keys)."""

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
            for key in self.processor.image_keys:  # pixels in float32; layouts (integers) as they are
                value = np.asarray(enc[key])
                out[key] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
        return out

    def token_lengths(self, examples: Sequence[Example]) -> np.ndarray:
        """`len(self(example)["input_ids"])` for each example, without decoding photos: texts
        are tokenized in one batch, and every photo adds the same number of tokens (all are
        resized to `image_side`), measured once on the first example with a photo."""
        if not examples:
            return np.zeros(0, np.int64)
        tokenizer = self.processor.tokenizer
        prompts = [self.processor.apply_chat_template(user_messages(e), add_generation_prompt=True) for e in examples]
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        # Special tokens the processor adds (a BOS, or none) are the same for every prompt;
        # photo examples are measured exactly below.
        text_only = [i for i, e in enumerate(examples) if e.image is None]
        added = 0
        if text_only:
            i = text_only[0]
            added = len(self.processor(prompts[i], None, padding=False)["input_ids"][0]) - len(prompt_ids[i])
        targets = [e.target + self.processor.end_of_turn for e in examples]
        target_ids = tokenizer(targets, add_special_tokens=False)["input_ids"]
        lengths = np.asarray([added + len(p) + len(t) for p, t in zip(prompt_ids, target_ids)], np.int64)
        with_image = np.asarray([e.image is not None for e in examples])
        if with_image.any():
            if not self.image_side:
                raise ValueError("token_lengths of image examples needs image_side (photo sizes differ otherwise)")
            first = int(np.argmax(with_image))
            lengths[with_image] += len(self(examples[first])["input_ids"]) - lengths[first]
        return lengths

    def target_lengths(self, examples: Sequence[Example]) -> np.ndarray:
        """Answer tokens (the loss-masked ones, end-of-turn included) of each example."""
        if not examples:
            return np.zeros(0, np.int64)
        targets = [e.target + self.processor.end_of_turn for e in examples]
        ids = self.processor.tokenizer(targets, add_special_tokens=False)["input_ids"]
        return np.asarray([len(t) for t in ids], np.int64)

    def __call__(self, example: Example) -> dict[str, np.ndarray]:
        out = self.prompt_features(example)
        target = self.processor.tokenizer(example.target + self.processor.end_of_turn, add_special_tokens=False)
        target_ids = np.asarray(target["input_ids"], np.int32)
        prompt_len = len(out["input_ids"])
        out["input_ids"] = np.concatenate([out["input_ids"], target_ids])
        out["loss_mask"] = np.concatenate([np.zeros(prompt_len, np.int32), np.ones(len(target_ids), np.int32)])
        return out
