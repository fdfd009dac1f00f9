"""Document splits of M2E2: which documents train, tune and test a model.

M2E2 has no training split. A split file (the shared `splits/m2e2_text_docs.json`) names
disjoint lists of document ids, `{"train": [...], "dev": [...], "test": [...]}` (other keys,
such as `about`, are notes), and a corpus is cut along them so that no sentence of a test
document reaches training.
"""

from __future__ import annotations

import dataclasses

from rmpl_jax.io.read_report import DataError, load_json
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.records import doc_id_of

PARTS = ("train", "dev", "test")


@dataclasses.dataclass(frozen=True)
class DocSplit:
    """Document ids per part; `path` names the file in errors."""

    path: str
    parts: dict[str, frozenset[str]]

    def documents(self, part: str) -> frozenset[str]:
        """The ids of one part; an unknown part is an error naming the file's parts."""
        if part not in self.parts:
            raise DataError(f"{self.path}: no part {part!r} (the file has {sorted(self.parts)})")
        return self.parts[part]


def read_doc_split(path: str) -> DocSplit:
    """Reads and checks a split file: every part a list of strings, no document twice."""
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object of document-id lists, got {type(raw).__name__}")
    parts, owner = {}, {}
    for part in PARTS:
        ids = raw.get(part)
        if ids is None:
            raise DataError(f"{path}: missing key {part!r}")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DataError(f"{path}: key {part!r} must be a list of document-id strings")
        for doc in ids:
            if doc in owner:
                raise DataError(f"{path}: document {doc!r} is in both {owner[doc]!r} and {part!r}")
            owner[doc] = part
        parts[part] = frozenset(ids)
    return DocSplit(path, parts)


def select_documents(corpus: M2E2Corpus, split: DocSplit, part: str, *, photos: bool) -> M2E2Corpus:
    """The corpus cut to one part's documents: their sentences, and with `photos` their photos
    and cross-media pairs (else sentences only). A document of the part with no sentence in the
    corpus is an error (a split file for another corpus)."""
    docs = split.documents(part)
    sentences = {k: s for k, s in corpus.sentences.items() if doc_id_of(k) in docs}
    found = {doc_id_of(k) for k in sentences}
    absent = sorted(docs - found)
    if absent:
        raise DataError(
            f"{split.path}: {len(absent)} {part!r} documents have no sentence in the corpus, e.g. {absent[:3]}"
        )
    if not photos:  # nor the sentences' references to them: the part is text
        sentences = {k: dataclasses.replace(s, images=()) for k, s in sentences.items()}
        return dataclasses.replace(corpus, sentences=sentences, images={}, coref=(), missing_images=())
    images = {k: v for k, v in corpus.images.items() if doc_id_of(k) in docs}
    coref = tuple(c for c in corpus.coref if c.sentence_id in sentences and c.image_id in images)
    missing = tuple(i for i in corpus.missing_images if doc_id_of(i) in docs)
    return dataclasses.replace(corpus, sentences=sentences, images=images, coref=coref, missing_images=missing)
