"""A photo as a scaled thumbnail with gold and predicted boxes drawn and labelled (PIL).

Gold boxes are green with their role at the top left inside the box, predicted boxes magenta
with theirs at the bottom left, so the two stay readable when they overlap.
"""

from __future__ import annotations

import base64
import dataclasses
import io

from PIL import Image, ImageDraw, ImageFont

from rmpl_jax.data.images import open_photo
from rmpl_jax.m2e2.records import Box

GOLD_COLOUR = (0, 170, 60)
PRED_COLOUR = (220, 0, 160)
THUMBNAIL_SIDE = 360  # the longer side of a thumbnail, in pixels
LABEL_SIZE = 12
MAX_LABEL_MOVES = 4  # how far a role tag may move off its corner to stay clear of the others


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclasses.dataclass(frozen=True)
class _Tag:
    """A role label to place: its text, colour, preferred corner and which way it may move."""

    text: str
    colour: tuple[int, int, int]
    x: float
    y: float
    step: int  # +1: may move down (gold, top corner); -1: up (predicted, bottom corner)


def _place(draw: ImageDraw.ImageDraw, font, tag: _Tag, size: tuple[int, int], placed: list) -> None:
    """Draws the tag at its corner, kept inside the image; when it would cover a tag already
    drawn it moves by its height, up to MAX_LABEL_MOVES times, else stays at its corner."""
    left, top, right, bottom = draw.textbbox((0, 0), tag.text, font=font)
    w, h = right - left + 4, bottom - top + 3
    x = min(max(0.0, tag.x), max(0.0, size[0] - w))
    ys = [min(max(0.0, tag.y + k * tag.step * h), max(0.0, size[1] - h)) for k in range(MAX_LABEL_MOVES + 1)]
    rects = [(x, y, x + w, y + h) for y in ys]
    rect = next((r for r in rects if not any(_overlaps(r, p) for p in placed)), rects[0])
    placed.append(rect)
    draw.rectangle(rect, fill=tag.colour)
    draw.text((rect[0] + 2 - left, rect[1] + 1 - top), tag.text, fill=(255, 255, 255), font=font)


def draw_boxes(
    image: Image.Image,
    gold: list[tuple[str, Box]],
    pred: list[tuple[str, Box]],
    max_side: int = THUMBNAIL_SIDE,
) -> Image.Image:
    """A copy of `image` scaled so its longer side is at most `max_side`, with the boxes
    (original pixels) drawn at that scale: gold first, predictions over them, then every
    role tag (so no outline crosses a tag)."""
    scale = min(1.0, max_side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    thumb = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(thumb)
    font = ImageFont.load_default(size=LABEL_SIZE)
    tags = []
    for boxes, colour, width in ((gold, GOLD_COLOUR, 3), (pred, PRED_COLOUR, 2)):
        for role, box in boxes:
            x1, x2 = sorted((box.x1 * scale, box.x2 * scale))
            y1, y2 = sorted((box.y1 * scale, box.y2 * scale))
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
            if colour == GOLD_COLOUR:
                tags.append(_Tag(role, colour, x1 + width, y1 + width, 1))
            else:
                tags.append(_Tag(role, colour, x1 + width, y2 - width - LABEL_SIZE - 3, -1))
    placed: list[tuple] = []
    for tag in tags:
        _place(draw, font, tag, size, placed)
    return thumb


def jpeg_data_uri(image: Image.Image, quality: int = 85) -> str:
    """The image as a `data:image/jpeg;base64,...` URI (the page embeds its photos)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def photo_thumbnail_uri(path: str, gold: list[tuple[str, Box]], pred: list[tuple[str, Box]]) -> str:
    """The photo at `path` with its boxes, as an embeddable JPEG data URI."""
    with open_photo(path) as image:
        return jpeg_data_uri(draw_boxes(image, gold, pred))
