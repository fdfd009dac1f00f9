"""The M2E2 reader on the real annotations and on broken copies of them."""

import json
import shutil

import pytest

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.io.read_report import DataError


@pytest.fixture(scope="module")
def corpus(m2e2_dir):
    return read_m2e2(str(m2e2_dir), str(m2e2_dir / "images"))


def test_counts(corpus):
    assert len(corpus.sentences) == 6013 + 192 - 38
    assert len(corpus.annotated_images()) == 391
    assert len(corpus.coref) == 309
    assert sum(len(s.events) for s in corpus.sentences.values()) == 1297
    assert sum(len(i.events[0].arguments) for i in corpus.annotated_images().values()) == 1429
    assert corpus.report.skipped == 0
    assert corpus.report.counts["arguments_outside_schema"] == 0


def test_shared_sentence_ids_merge_events(m2e2_dir, corpus):
    only = {r["sentence_id"]: r for r in json.load(open(m2e2_dir / "text_only_event.json"))}
    multi = {r["sentence_id"]: r for r in json.load(open(m2e2_dir / "text_multimedia_event.json"))}
    shared = sorted(set(only) & set(multi))
    assert len(shared) == 38
    for sid in shared:
        expected = len(only[sid]["golden-event-mentions"]) + len(multi[sid]["golden-event-mentions"])
        assert len(corpus.sentences[sid].events) == expected


def test_spans_carry_surface_text(corpus):
    sentence = corpus.sentences["VOA_EN_NW_2015.11.26.3074855_5"]
    triggers = {e.trigger.text for e in sentence.events}
    assert triggers, "this sentence has gold events"
    for event in sentence.events:
        assert event.trigger.text == " ".join(sentence.words[event.trigger.start : event.trigger.end])


def test_missing_images_reported(corpus, m2e2_dir):
    available = {p.stem for p in (m2e2_dir / "images").glob("*.jpg")}
    with_path = {i.image_id for i in corpus.images.values() if i.path}
    assert with_path == available & set(corpus.images)
    assert set(corpus.missing_images) == set(corpus.images) - available
    assert len(corpus.images) == len(with_path) + len(corpus.missing_images)


def test_no_images_dir_means_no_missing_report(m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    assert corpus.missing_images == ()
    assert all(i.path is None for i in corpus.images.values())


def _copy(m2e2_dir, tmp_path):
    for name in (
        "text_only_event.json",
        "text_multimedia_event.json",
        "image_only_event.json",
        "image_multimedia_event.json",
        "crossmedia_coref.txt",
    ):
        shutil.copy(m2e2_dir / name, tmp_path / name)
    return tmp_path


def _edit_json(path, edit):
    data = json.load(open(path))
    edit(data)
    json.dump(data, open(path, "w"))


def test_truncated_json_names_file(m2e2_dir, tmp_path):
    d = _copy(m2e2_dir, tmp_path)
    text = (d / "image_only_event.json").read_text()
    (d / "image_only_event.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"image_only_event\.json: invalid JSON at line"):
        read_m2e2(str(d))
    with pytest.raises(DataError, match="invalid JSON"):
        read_m2e2(str(d), lenient=True)  # a truncated file cannot be partly read


def test_missing_key_names_record(m2e2_dir, tmp_path):
    d = _copy(m2e2_dir, tmp_path)
    _edit_json(d / "text_multimedia_event.json", lambda data: data[3].pop("words"))
    with pytest.raises(DataError, match=r"text_multimedia_event\.json: record 3 .*missing key 'words'"):
        read_m2e2(str(d))


def test_offsets_outside_sentence(m2e2_dir, tmp_path):
    d = _copy(m2e2_dir, tmp_path)

    def edit(data):
        record = next(r for r in data if r["golden-event-mentions"])
        record["golden-event-mentions"][0]["trigger"]["end"] = len(record["words"]) + 1
        edit.sid = record["sentence_id"]

    _edit_json(d / "text_only_event.json", edit)
    with pytest.raises(DataError, match=f"record \\d+ \\({edit.sid}\\).*outside the sentence"):
        read_m2e2(str(d))
    corpus = read_m2e2(str(d), lenient=True)
    assert corpus.report.skipped == 1
    assert edit.sid not in corpus.sentences
    assert "outside the sentence" in corpus.report.problems[0]


def test_inverted_box(m2e2_dir, tmp_path):
    d = _copy(m2e2_dir, tmp_path)

    def edit(data):
        image_id = next(iter(data))
        box = next(iter(data[image_id]["role"].values()))[0]
        box[1], box[3] = box[3] + 1, box[1]
        edit.image_id = image_id

    _edit_json(d / "image_multimedia_event.json", edit)
    with pytest.raises(DataError, match=f"image {edit.image_id}: .*x2 < x1"):
        read_m2e2(str(d))
    corpus = read_m2e2(str(d), lenient=True)
    assert corpus.report.skipped == 1 and edit.image_id in corpus.report.problems[0]
    assert not corpus.images[edit.image_id].events


def test_bad_coref_line(m2e2_dir, tmp_path):
    d = _copy(m2e2_dir, tmp_path)
    lines = (d / "crossmedia_coref.txt").read_text().splitlines()
    lines[5] = "only_one_field"
    (d / "crossmedia_coref.txt").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"crossmedia_coref\.txt:6: expected 3"):
        read_m2e2(str(d))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing M2E2 file text_only_event.json"):
        read_m2e2(str(tmp_path))
