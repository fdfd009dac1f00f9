"""Gemma 3's image preprocessing in numpy and PIL, equal to transformers' `Gemma3ImageProcessor`
with its defaults (no pan-and-scan): RGB, resized to image_size x image_size (bilinear, aspect
not kept), scaled by 1/255, normalised with mean 0.5 and std 0.5, channels first.

It reproduces the PIL backend (`Gemma3ImageProcessorPil`, what transformers picks when
torchvision is not installed, as here) exactly. The torchvision backend (transformers' default
when torchvision is there) differs by one grey level (2/255 after normalising) in rare pixels,
its antialiased resize rounding differently from PIL's, and by up to two levels on transparent
images, its alpha blend truncating where PIL's rounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

MEAN = 0.5
STD = 0.5
RESCALE = 1 / 255


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image, transparency composited onto white as transformers' `convert_to_rgb`.

    Arrays are uint8, channels last: [H, W], [H, W, 1], [H, W, 3] or [H, W, 4].
    """
    if isinstance(image, Image.Image):
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"images must be PIL images or numpy arrays, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8 (0-255), got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image array of shape {image.shape}: expected [H, W] or [H, W, 1|3|4] (channels last)")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        # transformers' numpy path: blend in float64 and round (PIL's compositing rounds differently)
        alpha = image[..., 3:4] / 255
        image = np.round(alpha * image[..., :3] + (1 - alpha) * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(image))


def preprocess(images: Sequence[Image.Image | np.ndarray], image_size: int) -> np.ndarray:
    """Images -> pixel values [N, 3, image_size, image_size] float32 in [-1, 1]."""
    out = np.empty((len(images), 3, image_size, image_size), np.float32)
    for i, image in enumerate(images):
        resized = np.asarray(to_rgb(image).resize((image_size, image_size), Image.Resampling.BILINEAR))
        # transformers rescales in float64 and casts, then normalises in float32
        scaled = (resized.astype(np.float64) * RESCALE).astype(np.float32)
        out[i] = ((scaled - np.float32(MEAN)) / np.float32(STD)).transpose(2, 0, 1)
    return out
