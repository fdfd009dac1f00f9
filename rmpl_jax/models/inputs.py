"""A family's model inputs out of a batch: the token arrays plus the image inputs it declares,
and its static inputs (a layout) carried into a jit as a hashable key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

TOKEN_INPUTS = ("input_ids", "attention_mask", "segment_ids")  # segment_ids: packed rows (models/segments.py)


def select_inputs(batch: Mapping[str, Any], image_keys: tuple[str, ...], family: str) -> dict[str, Any]:
    """`input_ids`, `attention_mask`, `segment_ids` (when present) and the family's `image_keys` of `batch`;
    any other key is refused by name, before it reaches the model's call."""
    unknown = sorted(set(batch) - set(TOKEN_INPUTS) - set(image_keys))
    if unknown:
        takes = ", ".join(TOKEN_INPUTS + image_keys)
        raise ValueError(f"batch keys {unknown} are not inputs of a {family} model (it takes {takes})")
    return dict(batch)


def split_static(inputs: Mapping[str, Any], static_keys: tuple[str, ...]) -> tuple[dict[str, Any], tuple]:
    """(the inputs a jit traces, the static ones as a hashable key for `static_argnums` or a
    cache); `static_inputs(key)` gives the static arrays back."""
    arrays = {k: v for k, v in inputs.items() if k not in static_keys}
    key = tuple(
        (k, np.asarray(v).dtype.str, np.shape(v), tuple(np.ravel(v).tolist()))
        for k, v in inputs.items()
        if k in static_keys
    )
    return arrays, key


def static_inputs(key: tuple) -> dict[str, np.ndarray]:
    """The host arrays of a `split_static` key."""
    return {k: np.asarray(values, dtype).reshape(shape) for k, dtype, shape, values in key}
