"""MNRE reader: the real split files and bad-line fixtures."""

import os

import pytest

from rmpl_jax.data.mnre import read_mnre
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.ontology import MNRE_RELATIONS
from rmpl_jax.m2e2.records import Span

GOOD = (
    "{'token': ['RT', '@bob', ':', 'Bill', 'Cosby', 'visits', 'Ohio'], "
    "'h': {'name': 'Bill Cosby', 'pos': [3, 5]}, 't': {'name': 'Ohio', 'pos': [6, 7]}, "
    "'img_id': 'tw_1.jpg', 'relation': '/per/loc/place_of_residence'}"
)


@pytest.mark.parametrize("split, count", [("train", 12247), ("val", 1624), ("test", 1614)])
def test_real_splits(split, count, shared_data_dir):
    records, report = read_mnre(shared_data_dir / "mnre" / f"mnre_{split}.txt")
    assert len(records) == count and report.skipped == 0
    assert report.counts["images_missing"] == count  # no images offline
    assert {r.relation for r in records} <= set(MNRE_RELATIONS)
    for r in records[:200]:
        assert r.head.text == " ".join(r.tokens[r.head.start : r.head.end])
    if split == "train":
        assert {r.relation for r in records} == set(MNRE_RELATIONS)


def test_fixture_and_images(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "tw_1.jpg").write_bytes(b"")
    path = tmp_path / "mnre_dev.txt"
    path.write_text(GOOD + "\n\n" + GOOD.replace("tw_1.jpg", "tw_2.jpg") + "\n")
    records, report = read_mnre(path, images_dir=tmp_path / "img")
    assert [r.record_id for r in records] == ["mnre_dev:1", "mnre_dev:3"]
    assert records[0].head == Span(3, 5, "Bill Cosby") and records[0].tail == Span(6, 7, "Ohio")
    assert records[0].image == os.path.join(str(tmp_path / "img"), "tw_1.jpg")
    assert records[1].image is None and report.counts["images_missing"] == 1


@pytest.mark.parametrize(
    "line, message",
    [
        ("{'token': ['a'], ", "not a Python literal"),
        ("__import__('os').system('true')", "not a Python literal"),  # never evaluated
        (GOOD.replace("[6, 7]", "[6, 9]"), "outside the sentence"),
        (GOOD.replace("/per/loc/place_of_residence", "/per/loc/lives"), "relation"),
        (GOOD.replace("'img_id': 'tw_1.jpg', ", ""), "missing key 'img_id'"),
        (GOOD.replace("'pos': [3, 5]", "'pos': [3]"), "'pos'"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_bad_lines(tmp_path, line, message):
    path = tmp_path / "m.txt"
    path.write_text(GOOD + "\n" + line + "\n" + GOOD + "\n")
    with pytest.raises(DataError) as err:
        read_mnre(path)
    assert f"{path}:2" in str(err.value) and message in str(err.value)
    records, report = read_mnre(path, lenient=True)
    assert len(records) == 2 and report.skipped == 1


def test_name_mismatch_counted(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text(GOOD.replace("'name': 'Ohio'", "'name': 'Iowa'") + "\n")
    records, report = read_mnre(path)
    assert report.counts["name_mismatch"] == 1 and records[0].tail.text == "Ohio"
