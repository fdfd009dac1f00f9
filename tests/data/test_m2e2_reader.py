"""The M2E2 reader on the real annotations and on broken copies of them."""

import json
import shutil

import pytest
from PIL import Image

from rmpl_jax.data.m2e2 import candidate_photos, read_m2e2, readable_photos
from rmpl_jax.io.read_report import DataError
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2.records import Sentence, image_id_of


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
    referenced = {image_id_of(f) for s in corpus.sentences.values() for f in s.images}
    assert set(corpus.missing_images) == referenced - available


def test_candidates_come_from_documents_not_gold(corpus, m2e2_dir):
    photos, missing = candidate_photos(corpus.sentences.values(), str(m2e2_dir / "images"))
    referenced = {image_id_of(f) for s in corpus.sentences.values() for f in s.images}
    gold_only = set(corpus.annotated_images()) - referenced
    assert len(gold_only) == 10  # annotated photos that no sentence of their document names
    on_disk = {p.stem for p in (m2e2_dir / "images").glob("*.jpg")}
    assert {p.image_id for p in photos} == referenced | on_disk
    assert not gold_only & {p.image_id for p in photos}
    assert all(not p.events for p in photos) and missing == corpus.missing_images


def test_readable_photos_strict_and_lenient(tmp_path):
    sentences = [Sentence("d_1", ("a",), images=("d_0.jpg", "d_1.jpg", "d_2.jpg"))]
    Image.new("RGB", (30, 20)).save(tmp_path / "d_0.jpg")
    (tmp_path / "d_1.jpg").write_bytes((tmp_path / "d_0.jpg").read_bytes()[:50])  # truncated
    Image.new("RGB", (30, 20)).save(tmp_path / "extra.jpg")  # on disk, named by no sentence
    with pytest.raises(DataError, match=r"d_1\.jpg: unreadable image .*set --config.lenient=True"):
        readable_photos(sentences, str(tmp_path), lenient=False, skips=SkipRegistry())
    skips = SkipRegistry()
    photos = readable_photos(sentences, str(tmp_path), lenient=True, skips=skips)
    assert [(p.image_id, p.path is not None) for p in photos] == [
        ("d_0", True),
        ("d_1", False),
        ("d_2", False),
        ("extra", True),
    ]
    assert skips.counts() == {
        "photo missing from images_dir (its sentences decoded text-only)": 1,
        "M2E2 (its sentences decoded text-only): unreadable photo": 1,
    }
    limited = readable_photos(sentences, str(tmp_path), lenient=True, skips=SkipRegistry(), unreferenced=False)
    assert [p.image_id for p in limited] == ["d_0", "d_1", "d_2"]


def test_removing_gold_labels_keeps_the_candidates(m2e2_dir, tmp_path):
    d = _copy(m2e2_dir, tmp_path)
    for name in ("text_only_event.json", "text_multimedia_event.json"):
        _edit_json(d / name, lambda data: [r.update({"golden-event-mentions": []}) for r in data])
    for name in ("image_only_event.json", "image_multimedia_event.json"):
        (d / name).write_text("{}")
    (d / "crossmedia_coref.txt").write_text("")
    images = str(m2e2_dir / "images")
    bare = read_m2e2(str(d), images)
    gold = read_m2e2(str(m2e2_dir), images)
    assert not bare.annotated_images() and not any(s.events for s in bare.sentences.values())
    assert candidate_photos(bare.sentences.values(), images) == candidate_photos(gold.sentences.values(), images)


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


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda e: e.update(event_type="Life:Marry"), "'Life:Marry' is not an M2E2 event type"),
        (lambda e: e["role"].update(Pilot=[[1, 1, 2, 3, 4]]), "role 'Pilot' is not an image role"),
        (lambda e: e["role"].update({next(iter(e["role"])): [[1, 1, 2, 3]]}), "box must be"),
    ],
)
def test_bad_image_event(m2e2_dir, tmp_path, edit, message):
    d = _copy(m2e2_dir, tmp_path)

    def change(data):
        change.image_id = next(i for i, e in data.items() if e["role"])
        edit(data[change.image_id])

    _edit_json(d / "image_only_event.json", change)
    with pytest.raises(DataError, match=f"image_only_event.json: image {change.image_id}: .*{message}"):
        read_m2e2(str(d))
    corpus = read_m2e2(str(d), lenient=True)
    assert corpus.report.skipped == 1 and not corpus.images[change.image_id].events


def test_non_utf8_names_file_and_line(m2e2_dir, tmp_path):
    d = _copy(m2e2_dir, tmp_path)
    raw = (d / "text_only_event.json").read_bytes()
    at = raw.index(b"\n", 1000)  # a byte that is not UTF-8 on the line after the first newline past 1000
    (d / "text_only_event.json").write_bytes(raw[: at + 1] + b"\xff" + raw[at + 1 :])
    line = raw.count(b"\n", 0, at + 1) + 1
    with pytest.raises(DataError, match=f"text_only_event.json:{line}: not UTF-8 text"):
        read_m2e2(str(d))
    lines = (m2e2_dir / "crossmedia_coref.txt").read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"VOA", b"V\xe9A", 1)
    (d / "text_only_event.json").write_bytes(raw)
    (d / "crossmedia_coref.txt").write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"crossmedia_coref\.txt:5: not UTF-8 text"):
        read_m2e2(str(d))
    corpus = read_m2e2(str(d), lenient=True)
    assert corpus.report.skipped == 1 and len(corpus.coref) == 308


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
