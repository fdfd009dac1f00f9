"""imSitu/SWiG reader on fixtures written here, with a fixture mapping and the real one."""

import json
import os

import pytest

from rmpl_jax.data.imsitu import read_imsitu
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.records import Box, BoxArgument

MAPPING = (
    "arresting\tagent\tJustice||Arrest|Jail\tAgent\n"
    "arresting\tsuspect\tJustice||Arrest|Jail\tPerson\n"
    "arresting\tplace\tJustice||Arrest|Jail\tPlace\n"
    "shooting\tagent\tConflict||Attack\tAttacker\n"
    "shooting\ttool\tConflict||Attack\tInstrument\n"
)
NO_BOX = [-1, -1, -1, -1]


def _situation(verb, bb, width=400, height=300):
    return {"verb": verb, "width": width, "height": height, "frames": [dict.fromkeys(bb, "n0001")], "bb": bb}


@pytest.fixture
def mapping(tmp_path):
    path = tmp_path / "mapping.txt"
    path.write_text(MAPPING)
    return ontology.load_imsitu_mapping(path)


def _write(tmp_path, data):
    path = tmp_path / "swig.json"
    path.write_text(json.dumps(data))
    return path


def test_maps_verbs_roles_and_counts(tmp_path, mapping):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "arresting_1.jpg").write_bytes(b"")
    (tmp_path / "imgs" / "shooting_7.jpg").write_bytes(b"")
    data = {
        "arresting_1.jpg": _situation(
            "arresting",
            {
                "agent": [10, 20, 110, 220],
                "suspect": [150, 30, 250, 290],
                "place": [0, 0, 400, 300],
                "handcuffs": [5, 5, 20, 20],
            },
        ),
        "shooting_7.jpg": _situation("shooting", {"agent": [0, 0, 500, 100], "tool": NO_BOX, "target": [1, 1, 2, 2]}),
        "baking_3.jpg": _situation("baking", {"agent": [1, 2, 3, 4]}),
    }
    items, sizes, report = read_imsitu(_write(tmp_path, data), mapping, images_dir=tmp_path / "imgs")
    assert [i.image_id for i in items] == ["arresting_1", "shooting_7"]
    assert sizes == {"arresting_1": (400, 300), "shooting_7": (400, 300)}
    arrest, shoot = items
    assert arrest.path == os.path.join(str(tmp_path / "imgs"), "arresting_1.jpg")
    assert arrest.events[0].event_type == "Justice:Arrest-Jail"
    assert arrest.events[0].arguments == (
        BoxArgument("Agent", Box(10, 20, 110, 220)),
        BoxArgument("Person", Box(150, 30, 250, 290)),
    )
    # clamped into the 400x300 image
    assert shoot.events[0].arguments == (BoxArgument("Attacker", Box(0, 0, 400, 100)),)
    assert report.counts["verbs_unmapped"] == 1
    assert report.counts["roles_outside_image_schema"] == 1  # Place of Arrest-Jail
    assert report.counts["roles_unmapped"] == 2  # handcuffs, target
    assert report.counts["roles_no_box"] == 1
    assert report.counts["boxes_clamped"] == 1
    assert report.counts["arguments"] == 3 and report.records == 2


def test_missing_photo_is_a_bad_record(tmp_path, mapping):
    # A visual example needs its photo: strict names it, lenient skips the image and counts it.
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"")
    data = {n: _situation("arresting", {"agent": [1, 2, 3, 4]}) for n in ("a.jpg", "b.jpg")}
    path = _write(tmp_path, data)
    with pytest.raises(DataError, match=r"image 'b\.jpg': photo .*b\.jpg is missing"):
        read_imsitu(path, mapping, images_dir=tmp_path / "imgs")
    items, _, report = read_imsitu(path, mapping, images_dir=tmp_path / "imgs", lenient=True)
    assert [i.image_id for i in items] == ["a"]
    assert report.skipped == 1 and report.counts["images_missing"] == 1 and "b.jpg is missing" in report.problems[0]


def test_keep_unmapped_as_negatives(tmp_path, mapping):
    data = {"baking_3.jpg": _situation("baking", {"agent": [1, 2, 3, 4]})}
    items, _, report = read_imsitu(_write(tmp_path, data), mapping, keep_unmapped=True)
    assert items[0].events == () and items[0].path is None
    assert report.counts["verbs_unmapped"] == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"verb": "arresting", "width": 10, "frames": [], "bb": {}}, "missing key 'height'"),
        (_situation("arresting", {"agent": [1, 2, 3]}), "bb['agent']"),
        (_situation("arresting", {"agent": [30, 2, 3, 40]}), "x2 < x1"),
        (_situation("arresting", {"agent": [1, 2, 3, "4"]}), "numbers"),
        (_situation("arresting", {}, width=0), "positive"),
        ("not an object", "expected an object"),
    ],
)
def test_bad_images(tmp_path, mapping, bad, message):
    data = {
        "a.jpg": _situation("arresting", {"agent": [1, 2, 3, 4]}),
        "b.jpg": bad,
        "c.jpg": _situation("arresting", {"agent": [1, 2, 3, 4]}),
    }
    path = _write(tmp_path, data)
    with pytest.raises(DataError) as err:
        read_imsitu(path, mapping)
    assert str(path) in str(err.value) and "'b.jpg'" in str(err.value)
    assert message in str(err.value)
    items, _, report = read_imsitu(path, mapping, lenient=True)
    assert len(items) == 2 and report.skipped == 1


def test_not_an_object(tmp_path, mapping):
    with pytest.raises(DataError, match="keyed by image name"):
        read_imsitu(_write(tmp_path, [1, 2]), mapping)


def test_real_mapping(tmp_path, shared_data_dir):
    path = shared_data_dir / "imsitu" / "ace_sr_mapping.txt"
    mapping = ontology.load_imsitu_mapping(path)
    data = {"arresting_5.jpg": _situation("arresting", {"agent": [1, 1, 50, 50], "suspect": [60, 60, 90, 90]})}
    items, _, report = read_imsitu(_write(tmp_path, data), mapping)
    assert items[0].events[0].event_type == "Justice:Arrest-Jail"
    assert report.counts["arguments"] + report.counts["roles_unmapped"] == 2
