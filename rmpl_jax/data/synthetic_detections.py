"""Detector output for the synthetic corpus: what a real detector would give on its photos,
with seeded noise — missed objects, jittered boxes, extra (false) objects.

Each drawn role figure is an object with the detector label of its shape (a figure is a
`person`, a vehicle a `car`, ...). Noise comes from its own random stream per (seed, split),
so turning candidates on changes no record, photo or other random draw of the corpus.
"""

from __future__ import annotations

import dataclasses
import random

from rmpl_jax.data.synthetic import ROLE_LOOKS, SyntheticSplit
from rmpl_jax.m2e2.records import Box, Detection

SHAPE_LABELS = {
    "figure": "person",
    "block": "box",
    "triangle": "knife",
    "ellipse": "bag",
    "vehicle": "car",
    "frame": "area",
}


@dataclasses.dataclass(frozen=True)
class DetectorNoise:
    """p_miss: chance an object is not detected; jitter: std of each coordinate's shift as a
    share of the box's side; extra: (min, max) false detections per photo; scores of true
    detections in true_scores, of false ones in false_scores."""

    p_miss: float = 0.1
    jitter: float = 0.06
    extra: tuple[int, int] = (0, 2)
    true_scores: tuple[float, float] = (0.5, 0.99)
    false_scores: tuple[float, float] = (0.25, 0.7)


def _clamp(v: float, hi: float) -> float:
    return min(max(v, 0.0), hi)


def _jittered(box: Box, size: tuple[int, int], rng: random.Random, jitter: float) -> Box:
    w, h = box.x2 - box.x1, box.y2 - box.y1
    x1 = _clamp(box.x1 + rng.gauss(0, jitter * w), size[0] - 2)
    y1 = _clamp(box.y1 + rng.gauss(0, jitter * h), size[1] - 2)
    x2 = _clamp(box.x2 + rng.gauss(0, jitter * w), size[0])
    y2 = _clamp(box.y2 + rng.gauss(0, jitter * h), size[1])
    return Box(round(x1, 1), round(y1, 1), round(max(x2, x1 + 2), 1), round(max(y2, y1 + 2), 1))


def _extra_box(size: tuple[int, int], rng: random.Random) -> Box:
    w, h = size
    bw, bh = w * rng.uniform(0.1, 0.4), h * rng.uniform(0.1, 0.4)
    x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return Box(round(x1, 1), round(y1, 1), round(x1 + bw, 1), round(y1 + bh, 1))


def synthetic_detections(
    split: SyntheticSplit, *, seed: int = 0, noise: DetectorNoise = DetectorNoise()
) -> dict[str, tuple[Detection, ...]]:
    """image id -> detections (highest score first) for every photo of the split."""
    rng = random.Random(f"rmpl-synthetic-detections:{seed}:{split.name}")
    labels = sorted(set(SHAPE_LABELS.values()))
    out = {}
    for item in split.images:
        size = split.image_sizes[item.image_id]
        found = []
        for e in item.events:
            for a in e.arguments:
                if rng.random() < noise.p_miss:
                    continue
                label = SHAPE_LABELS[ROLE_LOOKS[a.role][0]]
                box = _jittered(a.box, size, rng, noise.jitter)
                found.append(Detection(label, box, round(rng.uniform(*noise.true_scores), 4)))
        for _ in range(rng.randint(*noise.extra)):
            found.append(
                Detection(rng.choice(labels), _extra_box(size, rng), round(rng.uniform(*noise.false_scores), 4))
            )
        found.sort(key=lambda d: -d.score)
        out[item.image_id] = tuple(found)
    return out
