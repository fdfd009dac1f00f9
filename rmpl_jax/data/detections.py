"""Detector boxes per photo (candidates for image arguments), in the YOLO JSON shape of the
shared M2E2 file `yolov8_objects.json`:

    {"<file name>": [{"box": [x1, y1, x2, y2], "label": "person", "score": 0.91}, ...], ...}

Boxes are in the photo's original pixels; keys are file names (`X_1.jpg`; the extension is
dropped to give the image id). imSitu/SWiG and MNRE photos take a user-supplied file of the
same shape. A bad entry is a DataError naming the file, the key and the entry's index; in
lenient mode that detection is skipped and counted instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping

from rmpl_jax.io.read_report import DataError, ReadReport, load_json, require
from rmpl_jax.m2e2.candidates import select
from rmpl_jax.m2e2.records import Box, Detection, ImageItem, image_id_of

Detections = dict[str, tuple[Detection, ...]]  # image id -> its detections, in file order


def _number(value, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def _detection(raw, where: str) -> Detection:
    box = require(raw, "box", list, where)
    if len(box) != 4:
        raise DataError(f"{where}: key 'box' must be [x1, y1, x2, y2], got {len(box)} numbers")
    x1, y1, x2, y2 = (_number(v, where, "key 'box'") for v in box)
    if not (x1 < x2 and y1 < y2):
        raise DataError(f"{where}: key 'box' {box} is inverted or empty (needs x1 < x2 and y1 < y2)")
    label = require(raw, "label", str, where)
    if not label.strip() or label != label.strip() or any(c in label for c in "\n\r[]"):
        raise DataError(
            f"{where}: key 'label' {label!r} must be non-blank, without surrounding spaces, line breaks or brackets"
        )
    score = _number(require(raw, "score", (int, float), where), where, "key 'score'")
    if not 0.0 <= score <= 1.0:
        raise DataError(f"{where}: key 'score' {score} is outside [0, 1]")
    return Detection(label, Box(x1, y1, x2, y2), score)


def read_detections(path: str, *, lenient: bool = False) -> tuple[Detections, ReadReport]:
    """Reads a detections file. Report counts: `detections` kept (records: photos)."""
    report = ReadReport(path, lenient=lenient)
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{file name: [detections]}}, got {type(data).__name__}")
    out: Detections = {}
    for name, entries in data.items():
        where = f"{path}: key {name!r}"
        if not isinstance(entries, list):
            report.skip(DataError(f"{where}: expected a list of detections, got {type(entries).__name__}"))
            continue
        kept = []
        for i, raw in enumerate(entries):
            try:
                kept.append(_detection(raw, f"{where} entry {i}"))
            except DataError as e:
                report.skip(e)
        image_id = image_id_of(name)
        if image_id in out:
            raise DataError(f"{where}: a second entry for image {image_id!r}")
        out[image_id] = tuple(kept)
        report.records += 1
        report.counts["detections"] += len(kept)
    return out, report


def write_detections(detections: Mapping[str, Iterable[Detection]], path: str, extension: str = ".png") -> None:
    """Writes detections in the same shape (keys: image id + extension)."""
    data = {
        f"{image_id}{extension}": [
            {"box": [d.box.x1, d.box.y1, d.box.x2, d.box.y2], "label": d.label, "score": d.score} for d in dets
        ]
        for image_id, dets in detections.items()
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def attach_candidates(
    items: Iterable[ImageItem], detections: Mapping[str, Iterable[Detection]], *, min_score: float, max_count: int
) -> tuple[list[ImageItem], list[str]]:
    """Items with their listed candidates (`candidates.select`), and the ids of photos the
    detections do not name (they get no candidates: their only answer is `none`)."""
    out, unnamed = [], []
    for item in items:
        found = detections.get(item.image_id)
        if found is None:
            unnamed.append(item.image_id)
        out.append(dataclasses.replace(item, candidates=select(found or (), min_score, max_count)))
    return out, unnamed
