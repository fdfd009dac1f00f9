"""Training pairs of the multimedia task: positives from the cross-media pairs, every other
pair of a document as a negative (or a hash-fixed share), other-document negatives of the same
type on request, bad coref lines counted."""

from rmpl_jax.data.multimedia_pairs import PairSettings, training_pairs
from rmpl_jax.data.synthetic import generate_split
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2.records import CorefPair, image_id_of


def test_pairs_of_the_synthetic_corpus(tmp_path):
    split = generate_split("train", 40, tmp_path, seed=3)
    pairs = training_pairs(split.sentences, split.images, split.pairs)
    positives = [p for p in pairs if p.event_type]
    assert {(p.sentence.sentence_id, p.image.image_id, p.event_type) for p in positives} == {
        (c.sentence_id, c.image_id, c.event_type) for c in split.pairs
    }
    document = {(s.sentence_id, image_id_of(f)) for s in split.sentences for f in s.images}
    keys = [(p.sentence.sentence_id, p.image.image_id) for p in pairs]
    assert set(keys) == document and len(keys) == len(document)  # every document pair once
    negatives = [p for p in pairs if p.event_type is None]
    assert any(p.sentence.events and p.image.events for p in negatives)  # same document, other event

    half = training_pairs(split.sentences, split.images, split.pairs, PairSettings(same_doc_negatives=0.5))
    kept = [p for p in half if p.event_type is None]
    assert 0.3 * len(negatives) < len(kept) < 0.7 * len(negatives)
    assert kept == [
        p for p in training_pairs(split.sentences, split.images, split.pairs, PairSettings(0.5)) if p.event_type is None
    ]

    other = training_pairs(split.sentences, split.images, split.pairs, PairSettings(0.0, 2))
    drawn = [p for p in other if p.event_type is None]
    assert drawn and len(drawn) <= 2 * len(positives)
    for p in drawn:  # same type, another document's photo
        assert p.image.image_id not in {image_id_of(f) for f in p.sentence.images}
        assert {e.event_type for e in p.image.events} & {e.event_type for e in p.sentence.events}


def test_bad_coref_lines_are_counted(tmp_path):
    split = generate_split("train", 10, tmp_path, seed=1)
    good = split.pairs[0]
    wrong_type = next(t for t in ("Life:Die", "Contact:Meet") if t != good.event_type)
    skips = SkipRegistry()
    pairs = training_pairs(
        split.sentences,
        split.images,
        [
            good,
            CorefPair("nowhere_1", good.image_id, good.event_type),
            CorefPair(good.sentence_id, good.image_id, wrong_type),
        ],
        skips=skips,
    )
    assert sum(1 for p in pairs if p.event_type) == 1
    assert skips.counts() == {
        "multimedia: cross-media pairs whose sentence or photo is not in the data": 1,
        "multimedia: cross-media pairs whose type the sentence or the photo lacks": 1,
    }
