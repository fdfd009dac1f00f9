"""Image arguments grounded in detector candidates: a photo's detector boxes are listed in the
prompt, and an argument names one of them by value (`ROLE: LABEL [x1, y1, x2, y2]`) instead of
writing four free numbers (docs/target_grammar.md, "Candidates").

Training targets come from `ground_event`: each gold box becomes the candidate with the highest
IoU when that reaches the threshold; otherwise the argument leaves the target and is counted.
`oracle_coverage` is the ceiling that grounding allows: the share of gold boxes that have a
candidate at IoU >= 0.5 (the strict protocol's threshold).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rmpl_jax.m2e2.boxes import BoxCodec, ImageSize
from rmpl_jax.m2e2.records import Box, BoxArgument, Detection, ImageEvent, ImageItem

STRICT_IOU = 0.5  # what the scorer needs for a box to count


def select(detections: Iterable[Detection], min_score: float, max_count: int) -> tuple[Detection, ...]:
    """The detections a prompt lists: score >= min_score, highest score first, at most max_count
    (0: no limit); equal scores keep the file's order."""
    kept = sorted((d for d in detections if d.score >= min_score), key=lambda d: -d.score)
    return tuple(kept[:max_count] if max_count > 0 else kept)


def scaled(detections: Sequence[Detection] | None, sx: float, sy: float) -> tuple[Detection, ...] | None:
    """Detections with boxes scaled by (sx, sy): into the model's frame, or back."""
    if detections is None:
        return None
    return tuple(
        Detection(d.label, Box(d.box.x1 * sx, d.box.y1 * sy, d.box.x2 * sx, d.box.y2 * sy), d.score) for d in detections
    )


def candidate_value(detection: Detection, image_size: ImageSize, codec: BoxCodec) -> str:
    """`LABEL [x1, y1, x2, y2]`: how prompts list a candidate and answers name it."""
    return f"{detection.label} {codec.format(codec.encode(detection.box, image_size))}"


def candidate_values(detections: Sequence[Detection], image_size: ImageSize, codec: BoxCodec) -> tuple[str, ...]:
    """Every candidate's value once (two detections that quantise alike are one choice)."""
    return tuple(dict.fromkeys(candidate_value(d, image_size, codec) for d in detections))


def best_candidate(box: Box, detections: Sequence[Detection]) -> tuple[Detection | None, float]:
    """The detection with the highest IoU with `box` (the first on ties) and that IoU."""
    best, best_iou = None, 0.0
    for d in detections:
        iou = box.iou(d.box)
        if iou > best_iou:
            best, best_iou = d, iou
    return best, best_iou


def ground_event(event: ImageEvent, detections: Sequence[Detection], min_iou: float) -> tuple[ImageEvent, int]:
    """The event with each argument's box replaced by its best candidate's box, and how many
    arguments were dropped because no candidate reached `min_iou`."""
    args, dropped = [], 0
    for a in event.arguments:
        best, iou = best_candidate(a.box, detections)
        if best is None or iou < min_iou:
            dropped += 1
        else:
            args.append(BoxArgument(a.role, best.box))
    return ImageEvent(event.event_type, tuple(args)), dropped


def ground_item(item: ImageItem, min_iou: float) -> tuple[ImageItem, int]:
    """`ground_event` on every event of an item with candidates (unchanged without)."""
    if item.candidates is None:
        return item, 0
    events, dropped = [], 0
    for e in item.events:
        grounded, n = ground_event(e, item.candidates, min_iou)
        events.append(grounded)
        dropped += n
    return ImageItem(item.image_id, tuple(events), item.path, item.candidates), dropped


def oracle_coverage(items: Iterable[ImageItem], min_iou: float = STRICT_IOU) -> tuple[int, int]:
    """(gold boxes with a candidate at IoU >= min_iou, gold boxes) over items with candidates:
    the most image-argument recall that choosing among candidates can reach."""
    covered = total = 0
    for item in items:
        for e in item.events:
            for a in e.arguments:
                total += 1
                _, iou = best_candidate(a.box, item.candidates or ())
                covered += int(iou >= min_iou)
    return covered, total


def oracle_summary(items: Iterable[ImageItem], min_iou: float = STRICT_IOU) -> dict:
    """`oracle_coverage` as a metrics entry: covered, gold_boxes and ceiling (a share)."""
    covered, total = oracle_coverage(items, min_iou)
    return {"covered": covered, "gold_boxes": total, "ceiling": round(covered / total, 4) if total else None}
