"""Name tables between Hugging Face tensors and our NNX state.

A model family describes its checkpoint as a list of `NameRule`s; the loader and the
exporter walk the same list in opposite directions, so a table written once serves both.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np


@dataclasses.dataclass(frozen=True)
class NameRule:
    """How one HF tensor (or one per layer) maps onto one leaf of our state.

    hf: regex that must fully match the HF name; a group named `layer` marks a tensor
        that goes into row `layer` of a stacked (scanned) leaf.
    ours: '/'-separated path of the leaf in `nnx.state(model)`.
    flatten_to_2d: reshape the HF tensor to (dim0, -1) first (conv kernels -> matrices).
    transpose: torch Linear stores (out, in); we store (in, out).
    last_axis_slice: (start, stop) when several HF tensors are fused along our last axis
        (q/k/v into one projection, gate/up into one). For a leaf of more than 2 dims (per
        layer) the slice indexes the flattened trailing axes, i.e. the view
        `leaf.reshape(leaf.shape[0], -1)` (a fused (embed, 2, mlp) gate/up kernel: gate is
        [0, mlp), up is [mlp, 2*mlp)).
    hf_shape: the HF tensor's shape, needed for export only when flatten_to_2d loses it
        (conv kernels); None means "our layout transposed back".
    """

    hf: str
    ours: str
    flatten_to_2d: bool = False
    transpose: bool = False
    last_axis_slice: tuple[int, int] | None = None
    hf_shape: tuple[int, ...] | None = None

    def match(self, hf_name: str) -> re.Match | None:
        return re.fullmatch(self.hf, hf_name)

    def hf_name(self, layer: int | None = None) -> str:
        """The HF name for a given layer (export direction); the regex must be a plain
        name with at most one `(?P<layer>\\d+)` group."""
        name = self.hf.replace(r"(?P<layer>\d+)", str(layer) if layer is not None else "")
        return name.replace("\\.", ".")

    def to_ours(self, tensor: np.ndarray) -> np.ndarray:
        """HF layout -> our per-layer layout (before placing into a fused slice)."""
        if self.flatten_to_2d:
            tensor = tensor.reshape(tensor.shape[0], -1)
        return tensor.T if self.transpose else tensor

    def to_hf(self, leaf: np.ndarray, hf_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Our per-layer leaf (already sliced) -> HF layout of shape `hf_shape` (default: the
        rule's `hf_shape`, else the leaf transposed back as it is)."""
        tensor = leaf.T if self.transpose else leaf
        hf_shape = hf_shape if hf_shape is not None else self.hf_shape
        if hf_shape is None:
            if self.flatten_to_2d:
                raise ValueError(f"{self.hf}: flatten_to_2d rule needs hf_shape for export")
            hf_shape = tensor.shape
        return np.ascontiguousarray(tensor.reshape(hf_shape))

    def slot(self, leaf: np.ndarray) -> np.ndarray:
        """The part of a per-layer leaf this rule fills (a view, writable when `leaf` is)."""
        if self.last_axis_slice is None:
            return leaf
        start, stop = self.last_axis_slice
        view = leaf.reshape(leaf.shape[0], -1) if leaf.ndim > 2 else leaf
        return view[..., start:stop]
