"""Typed records shared by every stage: readers produce them, tasks render them,
the scorer and predictors consume them. Offsets are token indices, end-exclusive;
boxes are (x1, y1, x2, y2) in the original image's pixels.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Span:
    """Tokens [start, end) of a sentence, with their surface text."""

    start: int
    end: int
    text: str = ""


@dataclasses.dataclass(frozen=True)
class EntityMention:
    entity_type: str
    span: Span


@dataclasses.dataclass(frozen=True)
class TextArgument:
    role: str
    span: Span


@dataclasses.dataclass(frozen=True)
class TextEvent:
    event_type: str
    trigger: Span
    arguments: tuple[TextArgument, ...] = ()


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One tokenised sentence with its gold entities and events.

    `doc_id` is the sentence id without its trailing `_N`; `images` are the file
    names of the document's photos (M2E2's `image` field).
    """

    sentence_id: str
    words: tuple[str, ...]
    events: tuple[TextEvent, ...] = ()
    entities: tuple[EntityMention, ...] = ()
    doc_id: str = ""
    images: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    def intersection(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return max(0.0, w) * max(0.0, h)

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class BoxArgument:
    role: str
    box: Box


@dataclasses.dataclass(frozen=True)
class ImageEvent:
    event_type: str
    arguments: tuple[BoxArgument, ...] = ()


@dataclasses.dataclass(frozen=True)
class Detection:
    """One object detector box (a candidate for image arguments): its label and score."""

    label: str
    box: Box
    score: float = 1.0


@dataclasses.dataclass(frozen=True)
class ImageItem:
    """One photo and its events (M2E2 gold has exactly one; unannotated photos none).

    `path` is the image file when it is available on disk, else None. `candidates`: the
    detector boxes its image-argument prompts list (in the same pixels as the events), or
    None when boxes are written freely (`m2e2/candidates.py`).
    """

    image_id: str
    events: tuple[ImageEvent, ...] = ()
    path: str | None = None
    candidates: tuple[Detection, ...] | None = None


@dataclasses.dataclass(frozen=True)
class MultimediaPair:
    """A sentence and a photo of one document asked about together (the `multimedia` task):
    `event_type` is the event both report (a CorefPair's type), or None when they share none."""

    sentence: Sentence
    image: ImageItem
    event_type: str | None = None


@dataclasses.dataclass(frozen=True)
class CorefPair:
    """A sentence and a photo of the same document that show the same event."""

    sentence_id: str
    image_id: str
    event_type: str


def doc_id_of(item_id: str) -> str:
    """`VOA_EN_NW_2016.04.19.3291980_3` -> `VOA_EN_NW_2016.04.19.3291980`."""
    head, sep, tail = item_id.rpartition("_")
    return head if sep and tail.isdigit() else item_id


def image_id_of(file_name: str) -> str:
    """Image ids carry no extension: `X_1.jpg` -> `X_1`."""
    for ext in (".jpg", ".jpeg", ".png"):
        if file_name.lower().endswith(ext):
            return file_name[: -len(ext)]
    return file_name


@dataclasses.dataclass(frozen=True)
class MNRERecord:
    """One MNRE example: a sentence, its head and tail entities, their relation and the photo
    (`image` is the photo's path when it exists on disk, else None)."""

    record_id: str
    tokens: tuple[str, ...]
    head: Span
    tail: Span
    relation: str
    img_id: str
    image: str | None = None
