"""Reader for imSitu situations with SWiG boxes, mapped onto M2E2 image events.

The file is one JSON object `{image_name: {"verb": v, "frames": [{role: noun_id, ...}, ...],
"bb": {role: [x1, y1, x2, y2] or [-1, -1, -1, -1]}, "height": h, "width": w}}`.
Verbs and roles go through `ontology.load_imsitu_mapping` (imSitu verb, role -> M2E2
type, role). Each mapped image becomes one `ImageItem` with one `ImageEvent`.

Report counts: `verbs_unmapped` (images skipped, or kept without events when
`keep_unmapped=True`), `roles_no_box` (role boxed -1), `roles_unmapped` (no M2E2 role
for the verb's role), `roles_outside_image_schema` (mapped role not in
`ontology.IMAGE_ROLES[type]`, e.g. Place), `boxes_empty` (zero area), `boxes_clamped`
(box reached outside the image), `images_missing` (images_dir given but no file: a bad
record, an error unless lenient, since a visual example needs its photo), `arguments`
kept. All of those roles and boxes are dropped.
"""

from __future__ import annotations

import math
import os

from rmpl_jax.io.paths import file_lookup
from rmpl_jax.io.read_report import DataError, ReadReport, load_json, require
from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.records import Box, BoxArgument, ImageEvent, ImageItem, image_id_of

_NO_BOX = [-1, -1, -1, -1]


def read_imsitu(
    path: str | os.PathLike,
    mapping: ontology.ImsituMapping,
    *,
    images_dir: str | os.PathLike | None = None,
    lenient: bool = False,
    keep_unmapped: bool = False,
) -> tuple[list[ImageItem], dict[str, tuple[int, int]], ReadReport]:
    """Reads a SWiG/imSitu JSON file into ImageItems of M2E2 types and image roles.

    Returns (items, sizes, report) where sizes maps image_id -> (width, height), which
    the box codecs need. `path` of each item is images_dir/image_name when images_dir
    is given, else None. Raises DataError naming file, image and key on bad input;
    `lenient=True` skips the bad image and notes it in the report instead.
    """
    path = os.fspath(path)
    report = ReadReport(source=path, lenient=lenient)
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object keyed by image name, got {type(data).__name__}")
    items, sizes = [], {}
    find = None if images_dir is None else file_lookup(images_dir)
    for image_name, obj in data.items():
        where = f"{path}: image {image_name!r}"
        try:
            item, size = _item(image_name, obj, mapping, images_dir, find, keep_unmapped, where, report)
        except DataError as e:
            report.skip(e)
            continue
        if item is not None:
            items.append(item)
            sizes[item.image_id] = size
    report.records = len(items)
    return items, sizes, report


def _item(image_name, obj, mapping, images_dir, find, keep_unmapped, where, report):
    verb = require(obj, "verb", str, where)
    width = require(obj, "width", int, where)
    height = require(obj, "height", int, where)
    if width <= 0 or height <= 0:
        raise DataError(f"{where}: keys 'width'/'height' must be positive, got {width}x{height}")
    frames = require(obj, "frames", list, where)
    if not all(isinstance(fr, dict) for fr in frames):
        raise DataError(f"{where}: key 'frames' must be a list of objects")
    boxes = require(obj, "bb", dict, where)
    event_type = mapping.event_type(verb)
    if event_type is None:
        report.counts["verbs_unmapped"] += 1
        if not keep_unmapped:
            return None, None
    arguments = []
    for role, raw in boxes.items():
        w = f"{where} bb[{role!r}]"
        box = _box(raw, width, height, w, report)
        if event_type is None:
            continue
        if box is None:
            report.counts["roles_no_box"] += 1
            continue
        m2e2_role = mapping.role(verb, role)
        if m2e2_role is None:
            report.counts["roles_unmapped"] += 1
        elif not ontology.is_image_role(event_type, m2e2_role):
            report.counts["roles_outside_image_schema"] += 1
        elif box.area <= 0:
            report.counts["boxes_empty"] += 1
        else:
            arguments.append(BoxArgument(m2e2_role, box))
    report.counts["arguments"] += len(arguments)
    file_path = None
    if find is not None:
        file_path = find(image_name)
        if file_path is None:
            report.counts["images_missing"] += 1
            raise DataError(
                f"{where}: photo {os.path.join(os.fspath(images_dir), image_name)} is missing "
                "(check imsitu_images, or read leniently to skip it)"
            )
    events = () if event_type is None else (ImageEvent(event_type, tuple(arguments)),)
    return ImageItem(image_id_of(image_name), events, file_path), (width, height)


def _box(raw, width, height, where, report) -> Box | None:
    if (
        not isinstance(raw, list)
        or len(raw) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw)
    ):
        raise DataError(f"{where}: expected [x1, y1, x2, y2] finite numbers, got {raw!r}")
    if list(raw) == _NO_BOX:
        return None
    x1, y1, x2, y2 = (float(v) for v in raw)
    if x2 < x1 or y2 < y1:
        raise DataError(f"{where}: box {raw!r} has x2 < x1 or y2 < y1")
    clamped = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))
    if clamped != (x1, y1, x2, y2):
        report.counts["boxes_clamped"] += 1
    return Box(*clamped)
