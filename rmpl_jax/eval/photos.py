"""A photo as a scaled thumbnail with gold and predicted boxes drawn and labelled (PIL).

Gold boxes are green with their role at the top left inside the box, predicted boxes magenta
with theirs at the bottom left, so the two stay readable when they overlap.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw, ImageFont

from rmpl_jax.m2e2.records import Box

GOLD_COLOUR = (0, 170, 60)
PRED_COLOUR = (220, 0, 160)
THUMBNAIL_SIDE = 360  # the longer side of a thumbnail, in pixels
LABEL_SIZE = 12


def _label(draw: ImageDraw.ImageDraw, font, text: str, x: float, y: float, colour, size: tuple[int, int]) -> None:
    """Text on a filled tag whose corner is (x, y), kept inside the image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 3
    x = min(max(0.0, x), max(0.0, size[0] - w))
    y = min(max(0.0, y), max(0.0, size[1] - h))
    draw.rectangle((x, y, x + w, y + h), fill=colour)
    draw.text((x + 2 - left, y + 1 - top), text, fill=(255, 255, 255), font=font)


def draw_boxes(
    image: Image.Image,
    gold: list[tuple[str, Box]],
    pred: list[tuple[str, Box]],
    max_side: int = THUMBNAIL_SIDE,
) -> Image.Image:
    """A copy of `image` scaled so its longer side is at most `max_side`, with the boxes
    (original pixels) drawn at that scale: gold first, predictions over them."""
    scale = min(1.0, max_side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    thumb = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(thumb)
    font = ImageFont.load_default(size=LABEL_SIZE)
    for boxes, colour, width in ((gold, GOLD_COLOUR, 3), (pred, PRED_COLOUR, 2)):
        for role, box in boxes:
            x1, y1, x2, y2 = (v * scale for v in (box.x1, box.y1, box.x2, box.y2))
            x1, x2 = sorted((x1, x2))
            y1, y2 = sorted((y1, y2))
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
            if colour == GOLD_COLOUR:
                _label(draw, font, role, x1 + width, y1 + width, colour, size)
            else:
                _label(draw, font, role, x1 + width, y2 - width - LABEL_SIZE - 3, colour, size)
    return thumb


def jpeg_data_uri(image: Image.Image, quality: int = 85) -> str:
    """The image as a `data:image/jpeg;base64,...` URI (the page embeds its photos)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def photo_thumbnail_uri(path: str, gold: list[tuple[str, Box]], pred: list[tuple[str, Box]]) -> str:
    """The photo at `path` with its boxes, as an embeddable JPEG data URI."""
    with Image.open(path) as image:
        return jpeg_data_uri(draw_boxes(image, gold, pred))
