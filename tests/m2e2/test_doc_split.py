"""Document splits: the file's checks, and cutting a corpus by documents (the shared split:
129 / 26 / 74 documents; its test part is 2,047 sentences with 390 text events)."""

from __future__ import annotations

import json

import pytest

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.doc_split import PARTS, read_doc_split, select_documents
from rmpl_jax.m2e2.records import doc_id_of


def _write(tmp_path, value) -> str:
    path = tmp_path / "split.json"
    path.write_text(json.dumps(value))
    return str(path)


@pytest.mark.parametrize(
    "value, message",
    [
        ([], "expected a JSON object"),
        ({"train": [], "dev": []}, "missing key 'test'"),
        ({"train": ["a"], "dev": "b", "test": []}, "key 'dev' must be a list"),
        ({"train": ["a", 3], "dev": [], "test": []}, "key 'train' must be a list"),
        ({"train": ["a"], "dev": [], "test": ["a"]}, "document 'a' is in both 'train' and 'test'"),
    ],
)
def test_bad_split_files_are_errors_naming_the_file(tmp_path, value, message):
    path = _write(tmp_path, value)
    with pytest.raises(DataError, match=message) as e:
        read_doc_split(path)
    assert str(e.value).startswith(path)


def test_unknown_part_and_unknown_documents_are_errors(tmp_path, m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    split = read_doc_split(_write(tmp_path, {"about": "notes", "train": ["NOT_A_DOC"], "dev": [], "test": []}))
    with pytest.raises(DataError, match="no part 'validation'"):
        split.documents("validation")
    with pytest.raises(DataError, match="1 'train' documents have no sentence in the corpus"):
        select_documents(corpus, split, "train", photos=False)


def test_the_shared_split_cuts_m2e2_by_document(shared_data_dir, m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    split = read_doc_split(str(shared_data_dir / "splits" / "m2e2_text_docs.json"))
    parts = {p: select_documents(corpus, split, p, photos=False) for p in PARTS}
    assert [len(split.documents(p)) for p in PARTS] == [129, 26, 74]
    test = parts["test"]
    assert len(test.sentences) == 2047 and sum(len(s.events) for s in test.sentences.values()) == 390
    assert not test.images and not test.coref and not any(s.images for s in test.sentences.values())
    docs = {p: {doc_id_of(k) for k in parts[p].sentences} for p in PARTS}
    assert not docs["train"] & docs["test"] and not docs["dev"] & docs["test"] and not docs["train"] & docs["dev"]
    assert sum(len(c.sentences) for c in parts.values()) == len(corpus.sentences)  # every document is in one part

    with_photos = select_documents(corpus, split, "test", photos=True)
    assert with_photos.sentences.keys() == test.sentences.keys()
    assert with_photos.images and all(doc_id_of(i) in split.documents("test") for i in with_photos.images)
    assert all(c.sentence_id in test.sentences for c in with_photos.coref)
