"""Synthetic corpus: determinism, coverage, drawn boxes, pairs, speed, M2E2 layout."""

import collections
import hashlib
import time

import pytest
from PIL import Image

from rmpl_jax.data import synthetic
from rmpl_jax.data.jmee import read_jmee
from rmpl_jax.m2e2 import grammar, ontology, parse, render
from rmpl_jax.m2e2.records import doc_id_of
from rmpl_jax.models.qwen2_vl.boxes import Qwen2VLBoxes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    start = time.perf_counter()
    c = synthetic.generate_corpus(root, seed=3, train_docs=400, heldout_docs=60)
    elapsed = time.perf_counter() - start
    return c, elapsed


def test_size_and_speed(corpus):
    c, elapsed = corpus
    train = c["train"]
    assert len(train.sentences) > 1500 and len(train.images) > 250
    assert elapsed < 30, f"generation took {elapsed:.1f}s"  # ~1 s here; shared CPUs vary


def test_coverage(corpus):
    train = corpus[0]["train"]
    types = collections.Counter(e.event_type for s in train.sentences for e in s.events)
    assert set(types) == set(ontology.EVENT_TYPES)
    roles = {(e.event_type, a.role) for s in train.sentences for e in s.events for a in e.arguments}
    assert roles == {(t, r) for t, rs in ontology.TEXT_ROLES.items() for r in rs}
    n_events = collections.Counter(len(s.events) for s in train.sentences)
    assert n_events[0] > 0 and n_events[2] > 0 and set(n_events) <= {0, 1, 2}
    image_types = {i.events[0].event_type for i in train.images if i.events}
    assert image_types == set(ontology.EVENT_TYPES)
    assert any(not i.events for i in train.images)
    image_roles = {(i.events[0].event_type, a.role) for i in train.images if i.events for a in i.events[0].arguments}
    assert image_roles == {(t, r) for t, rs in ontology.IMAGE_ROLES.items() for r in rs}


def test_records_are_consistent(corpus):
    for split in corpus[0].values():
        sentences = {s.sentence_id: s for s in split.sentences}
        images = {i.image_id: i for i in split.images}
        for s in split.sentences:
            for e in s.events:
                for span in (e.trigger, *(a.span for a in e.arguments)):
                    assert span.text == " ".join(s.words[span.start : span.end])
            assert all(f"{doc_id_of(f[:-4])}" == s.doc_id for f in s.images)
        for i in split.images:
            w, h = split.image_sizes[i.image_id]
            with Image.open(i.path) as img:
                assert img.size == (w, h) and 224 <= w <= 448 and 224 <= h <= 448
            for a in i.events[0].arguments if i.events else ():
                b = a.box
                assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
        assert split.pairs
        for p in split.pairs:
            s, i = sentences[p.sentence_id], images[p.image_id]
            assert s.doc_id == doc_id_of(i.image_id)
            assert p.event_type in {e.event_type for e in s.events}
            assert i.events[0].event_type == p.event_type
        # every sentence/image couple of a document sharing a type is a pair
        expected = {
            (s.sentence_id, i.image_id, e.event_type)
            for s in split.sentences
            for i in split.images
            if i.events and s.doc_id == doc_id_of(i.image_id)
            for e in s.events
            if e.event_type == i.events[0].event_type
        }
        assert {(p.sentence_id, p.image_id, p.event_type) for p in split.pairs} == expected


def test_boxes_are_drawn(corpus):
    """The last drawn non-frame argument shows its role colour at its box centre."""
    checked = 0
    for i in corpus[0]["train"].images[:80]:
        if not i.events:
            continue
        args = [a for a in i.events[0].arguments if a.role != "Place"]
        if not args:
            continue
        a = args[-1]
        b = a.box
        with Image.open(i.path) as img:
            pixel = img.convert("RGB").getpixel((int((b.x1 + b.x2) / 2), int((b.y1 + b.y2) / 2)))
        assert pixel == synthetic.ROLE_LOOKS[a.role][1]
        checked += 1
    assert checked > 20


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_deterministic_and_splits_disjoint(tmp_path, corpus):
    a = synthetic.generate_split("train", 15, tmp_path / "a", seed=3)
    b = synthetic.generate_split("train", 15, tmp_path / "b", seed=3)
    c = synthetic.generate_split("train", 15, tmp_path / "c", seed=4)
    assert a.sentences == b.sentences and a.pairs == b.pairs
    assert [(i.image_id, i.events) for i in a.images] == [(i.image_id, i.events) for i in b.images]
    assert [_digest(i.path) for i in a.images] == [_digest(i.path) for i in b.images]
    assert a.sentences != c.sentences
    # same seed + name as the fixture's train split: same prefix of documents
    assert a.sentences == corpus[0]["train"].sentences[: len(a.sentences)]
    train, held = corpus[0]["train"], corpus[0]["heldout"]
    assert not {s.sentence_id for s in train.sentences} & {s.sentence_id for s in held.sentences}
    assert not {i.path for i in train.images} & {i.path for i in held.images}
    assert [s.words for s in held.sentences[:20]] != [s.words for s in train.sentences[:20]]


def test_renders_and_parses(corpus):
    split = corpus[0]["heldout"]
    codec = Qwen2VLBoxes()
    for s in split.sentences:
        for task in grammar.TEXT_TASKS:
            for ex in render.render(task, s):
                assert parse.parse(ex.target, ex.context).failures == 0
    for i in split.images:
        for task in grammar.IMAGE_TASKS:
            for ex in render.render(task, i, image_size=split.image_sizes[i.image_id], codec=codec):
                assert parse.parse(ex.target, ex.context).failures == 0


def test_m2e2_layout_reads_back(tmp_path, corpus):
    split = corpus[0]["heldout"]
    paths = synthetic.write_m2e2_format(split, tmp_path)
    sentences, report = read_jmee(paths["text"])
    assert report.skipped == 0 and sentences == list(split.sentences)
    with open(paths["coref"]) as f:
        lines = f.read().splitlines()
    assert len(lines) == len(split.pairs)
    assert lines[0].split("\t")[1].endswith(".png")


def test_bad_split_name(tmp_path):
    with pytest.raises(ValueError, match="split name"):
        synthetic.generate_split("a/b", 1, tmp_path)
