"""The detections reader (YOLO JSON shape): a round trip, errors naming file, key and entry,
lenient skips counted, and which detections a prompt lists."""

from __future__ import annotations

import json

import pytest

from rmpl_jax.data.detections import attach_candidates, read_detections, write_detections
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.records import Box, Detection, ImageItem

GOOD = {
    "A_0.jpg": [
        {"box": [1.5, 2, 30, 40], "label": "person", "score": 0.9},
        {"box": [5, 5, 9, 9], "label": "cell phone", "score": 0.3},
    ],
    "B_1.jpg": [],
}


def _write(tmp_path, data) -> str:
    path = tmp_path / "objects.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_reads_the_yolo_shape_and_round_trips(tmp_path):
    found, report = read_detections(_write(tmp_path, GOOD))
    assert found == {
        "A_0": (Detection("person", Box(1.5, 2.0, 30.0, 40.0), 0.9), Detection("cell phone", Box(5, 5, 9, 9), 0.3)),
        "B_1": (),
    }
    assert report.records == 2 and report.counts["detections"] == 2
    out = str(tmp_path / "again.json")
    write_detections(found, out, extension=".jpg")
    assert read_detections(out)[0] == found


def test_shared_m2e2_file_reads(m2e2_dir):
    found, report = read_detections(str(m2e2_dir / "yolov8_objects.json"))
    assert len(found) == 1014 and report.skipped == 0
    assert all(d.box.x1 < d.box.x2 and d.box.y1 < d.box.y2 for dets in found.values() for d in dets)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"box": [1, 2, 3], "label": "person", "score": 0.5}, r"key 'A_0.jpg' entry 0: key 'box' must be \[x1"),
        ({"box": [5, 2, 3, 9], "label": "person", "score": 0.5}, "inverted or empty"),
        ({"box": [1, 2, "x", 9], "label": "person", "score": 0.5}, "finite number"),
        ({"box": [1, 2, 3, 9], "label": "per\nson", "score": 0.5}, "key 'label'"),
        ({"box": [1, 2, 3, 9], "label": "a [b]", "score": 0.5}, "brackets"),
        ({"box": [1, 2, 3, 9], "label": "person", "score": 1.5}, r"key 'score' 1.5 is outside \[0, 1\]"),
        ({"box": [1, 2, 3, 9], "score": 0.5}, "missing key 'label'"),
    ],
)
def test_bad_entries_name_file_key_and_entry(tmp_path, entry, message):
    path = _write(tmp_path, {"A_0.jpg": [entry]})
    with pytest.raises(DataError, match=message) as err:
        read_detections(path)
    assert str(err.value).startswith(path)
    found, report = read_detections(path, lenient=True)
    assert found == {"A_0": ()} and report.skipped == 1


def test_bad_file_shapes(tmp_path):
    with pytest.raises(DataError, match="expected a JSON object"):
        read_detections(_write(tmp_path, [1, 2]))
    with pytest.raises(DataError, match="key 'A_0.jpg': expected a list"):
        read_detections(_write(tmp_path, {"A_0.jpg": {"box": []}}))
    with pytest.raises(DataError, match="second entry for image 'A_0'"):
        read_detections(_write(tmp_path, {"A_0.jpg": [], "A_0.png": []}))


def test_attach_lists_the_best_scores_and_names_unknown_photos():
    dets = {"A": tuple(Detection(f"o{i}", Box(0, 0, 1 + i, 1 + i), s) for i, s in enumerate((0.3, 0.9, 0.1, 0.6)))}
    items, unnamed = attach_candidates([ImageItem("A"), ImageItem("B")], dets, min_score=0.25, max_count=2)
    assert [d.label for d in items[0].candidates] == ["o1", "o3"]  # score order, >= 0.25, at most 2
    assert items[1].candidates == () and unnamed == ["B"]
    items, _ = attach_candidates([ImageItem("A")], dets, min_score=0.0, max_count=0)
    assert len(items[0].candidates) == 4
