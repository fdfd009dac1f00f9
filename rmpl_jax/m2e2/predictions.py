"""M2E2 prediction files (JSON Lines), in the format of the evaluation spec.

    {"kind": "text",  "sentence_id": S, "events": [{"event_type": T, "trigger": [s, e],
                       "arguments": [{"role": R, "span": [s, e]}]}]}
    {"kind": "image", "image_id": I, "events": [{"event_type": T,
                       "arguments": [{"role": R, "box": [x1, y1, x2, y2]}]}]}
    {"kind": "coref", "sentence_id": S, "image_id": I, "event_type": T}

`arguments` may be omitted (no arguments). A malformed line raises PredictionError
naming the file and line; unknown types and roles are kept (they score as wrong).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from typing import Any

from rmpl_jax.io import paths
from rmpl_jax.io.errors import UserError
from rmpl_jax.io.lines import numbered_lines
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    CorefPair,
    ImageEvent,
    Span,
    TextArgument,
    TextEvent,
)


class PredictionError(UserError, ValueError):
    """A malformed prediction line."""


@dataclasses.dataclass(frozen=True)
class TextPrediction:
    sentence_id: str
    events: tuple[TextEvent, ...]


@dataclasses.dataclass(frozen=True)
class ImagePrediction:
    image_id: str
    events: tuple[ImageEvent, ...]


@dataclasses.dataclass
class PredictionSet:
    text: list[TextPrediction] = dataclasses.field(default_factory=list)
    images: list[ImagePrediction] = dataclasses.field(default_factory=list)
    coref: list[CorefPair] = dataclasses.field(default_factory=list)


def _require(obj: dict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise PredictionError(f"{what}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PredictionError(f"{what}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _offsets(value: Any, what: str) -> Span:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise PredictionError(f"{what}: expected [start, end] token offsets, got {value!r}")
    return Span(value[0], value[1])


def _box(value: Any, what: str) -> Box:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise PredictionError(f"{what}: expected [x1, y1, x2, y2] finite numbers, got {value!r}")
    return Box(*(float(v) for v in value))


def _events(obj: dict, what: str) -> list[dict]:
    events = _require(obj, "events", list, what)
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise PredictionError(f"{what}: event {i} is not an object")
    return events


def _arguments(event: dict, what: str) -> list[dict]:
    args = event.get("arguments", [])
    if not isinstance(args, list) or not all(isinstance(a, dict) for a in args):
        raise PredictionError(f"{what}: 'arguments' must be a list of objects")
    return args


def parse_prediction_line(obj: Any, what: str) -> TextPrediction | ImagePrediction | CorefPair:
    """Validates one decoded JSON line; `what` names it in errors."""
    if not isinstance(obj, dict):
        raise PredictionError(f"{what}: expected a JSON object")
    kind = _require(obj, "kind", str, what)
    if kind == "text":
        events = []
        for i, e in enumerate(_events(obj, what)):
            ew = f"{what} event {i}"
            args = tuple(
                TextArgument(_require(a, "role", str, ew), _offsets(a.get("span"), ew)) for a in _arguments(e, ew)
            )
            events.append(TextEvent(_require(e, "event_type", str, ew), _offsets(e.get("trigger"), ew), args))
        return TextPrediction(_require(obj, "sentence_id", str, what), tuple(events))
    if kind == "image":
        events = []
        for i, e in enumerate(_events(obj, what)):
            ew = f"{what} event {i}"
            args = tuple(BoxArgument(_require(a, "role", str, ew), _box(a.get("box"), ew)) for a in _arguments(e, ew))
            events.append(ImageEvent(_require(e, "event_type", str, ew), args))
        return ImagePrediction(_require(obj, "image_id", str, what), tuple(events))
    if kind == "coref":
        return CorefPair(
            _require(obj, "sentence_id", str, what),
            _require(obj, "image_id", str, what),
            _require(obj, "event_type", str, what),
        )
    raise PredictionError(f"{what}: unknown kind {kind!r} (expected text, image or coref)")


def read_predictions(path: str) -> PredictionSet:
    """Reads a predictions JSONL file; blank lines are allowed. Any malformed line (not
    UTF-8, not JSON, not the format) raises PredictionError naming the file and line."""
    predictions = PredictionSet()
    try:
        lines = list(numbered_lines(path))
    except DataError as e:
        raise PredictionError(str(e)) from None
    for lineno, line in lines:
        what = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise PredictionError(f"{what}: invalid JSON: {e.msg}") from None
        except RecursionError:
            raise PredictionError(f"{what}: JSON nested too deeply") from None
        record = parse_prediction_line(obj, what)
        if isinstance(record, TextPrediction):
            predictions.text.append(record)
        elif isinstance(record, ImagePrediction):
            predictions.images.append(record)
        else:
            predictions.coref.append(record)
    return predictions


def text_line(sentence_id: str, events: Iterable[TextEvent]) -> dict:
    return {
        "kind": "text",
        "sentence_id": sentence_id,
        "events": [
            {
                "event_type": e.event_type,
                "trigger": [e.trigger.start, e.trigger.end],
                "arguments": [{"role": a.role, "span": [a.span.start, a.span.end]} for a in e.arguments],
            }
            for e in events
        ],
    }


def image_line(image_id: str, events: Iterable[ImageEvent]) -> dict:
    return {
        "kind": "image",
        "image_id": image_id,
        "events": [
            {
                "event_type": e.event_type,
                "arguments": [{"role": a.role, "box": [a.box.x1, a.box.y1, a.box.x2, a.box.y2]} for a in e.arguments],
            }
            for e in events
        ],
    }


def coref_line(pair: CorefPair) -> dict:
    return {"kind": "coref", "sentence_id": pair.sentence_id, "image_id": pair.image_id, "event_type": pair.event_type}


def write_predictions(path: str, predictions: PredictionSet) -> None:
    """Writes text, image, then coref lines (to a local path or a URL, gs://...)."""
    lines = [text_line(p.sentence_id, p.events) for p in predictions.text]
    lines += [image_line(p.image_id, p.events) for p in predictions.images]
    lines += [coref_line(pair) for pair in predictions.coref]
    paths.write_text(path, "".join(json.dumps(line) + "\n" for line in lines))
