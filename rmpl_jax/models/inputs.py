"""A family's model inputs out of a batch: the token arrays plus the image inputs it declares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOKEN_INPUTS = ("input_ids", "attention_mask")


def select_inputs(batch: Mapping[str, Any], image_keys: tuple[str, ...], family: str) -> dict[str, Any]:
    """`input_ids`, `attention_mask` (when present) and the family's `image_keys` of `batch`;
    any other key is refused by name, before it reaches the model's call."""
    unknown = sorted(set(batch) - set(TOKEN_INPUTS) - set(image_keys))
    if unknown:
        takes = ", ".join(TOKEN_INPUTS + image_keys)
        raise ValueError(f"batch keys {unknown} are not inputs of a {family} model (it takes {takes})")
    return dict(batch)
