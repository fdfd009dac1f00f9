"""The trigger-lexicon baseline: what it learns, where it fires, how the threshold is chosen,
and its strict score on the shared split's test documents (the figure in
benchmarks/m2e2_text.md)."""

from __future__ import annotations

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.lexicon import TriggerLexicon, choose_threshold
from rmpl_jax.eval.scorer import score
from rmpl_jax.io.read_report import ReadReport
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.doc_split import read_doc_split, select_documents
from rmpl_jax.m2e2.records import Sentence, Span, TextEvent


def _sentence(sid: str, text: str, *events) -> Sentence:
    return Sentence(sid, tuple(text.split()), events=tuple(TextEvent(t, Span(i, i + 1)) for t, i in events))


TRAIN = [
    _sentence("d_0", "troops attacked the town", ("Conflict:Attack", 1)),
    _sentence("d_1", "protesters Attacked police", ("Conflict:Demonstrate", 1)),
    _sentence("d_2", "they attacked again", ("Conflict:Attack", 1)),
    _sentence("d_3", "the talks were attacked in the press"),
    _sentence("d_4", "leaders met in Paris", ("Contact:Meet", 1)),
    _sentence("d_5", "he met nobody"),
]


def test_learns_each_words_most_frequent_type_and_its_trigger_share():
    lexicon = TriggerLexicon.learn(TRAIN)
    attacked = lexicon.entries["attacked"]  # lowercased: 'Attacked' counts too
    assert (attacked.event_type, attacked.count, attacked.share) == ("Conflict:Attack", 4, 0.75)
    assert lexicon.entries["met"].share == 0.5 and "town" not in lexicon.entries


def test_fires_where_the_share_reaches_the_threshold():
    lexicon = TriggerLexicon.learn(TRAIN)
    test = [_sentence("t_0", "rebels attacked and met")]
    (low,) = lexicon.predict(test, 0.5).text
    assert low.events == (TextEvent("Conflict:Attack", Span(1, 2)), TextEvent("Contact:Meet", Span(3, 4)))
    (high,) = lexicon.predict(test, 0.6).text
    assert high.events == (TextEvent("Conflict:Attack", Span(1, 2)),)


def test_threshold_is_the_best_on_dev():
    lexicon = TriggerLexicon.learn(TRAIN)
    dev_sentence = _sentence("v_0", "rebels attacked and met", ("Conflict:Attack", 1))
    dev = M2E2Corpus({"v_0": dev_sentence}, {}, (), (), ReadReport("dev"))
    best, sweep = choose_threshold(lexicon, dev, thresholds=(0.25, 0.5, 0.6, 0.8))
    assert best == 0.6  # 0.25 and 0.5 also predict 'met'; 0.8 predicts nothing
    assert sweep[0.6]["f1"] == 1.0 and sweep[0.8]["f1"] == 0.0


def test_on_the_shared_split(shared_data_dir, m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    split = read_doc_split(str(shared_data_dir / "splits" / "m2e2_text_docs.json"))
    train, dev, test = (select_documents(corpus, split, p, photos=False) for p in ("train", "dev", "test"))
    lexicon = TriggerLexicon.learn(train.sentences.values())
    threshold, _ = choose_threshold(lexicon, dev)
    report = score(test, lexicon.predict(test.sentences.values(), threshold)).as_dict()
    assert threshold == 0.25
    assert (report["text_event"]["tp"], report["text_event"]["pred"], report["text_event"]["gold"]) == (198, 513, 390)
    assert report["text_argument"]["pred"] == 0
