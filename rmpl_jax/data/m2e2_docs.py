"""M2E2's own sentences as data, cut by a document split (the config's `data.m2e2` block).

M2E2 has no training split; `m2e2/doc_split.py` reads one (by default the shared
`splits/m2e2_text_docs.json`) so that a model trains on some documents' text and is scored
on others'. Only the text is used: the split's documents have 9 of their 1,014 photos on disk.
"""

from __future__ import annotations

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.io.shared_data import shared_data_path
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.doc_split import read_doc_split, select_documents

DEFAULT_SPLIT = ("splits", "m2e2_text_docs.json")


def split_path(block) -> str:
    """The split file a `data.m2e2` block names (empty: the shared data's)."""
    return block.split or shared_data_path(*DEFAULT_SPLIT)


def m2e2_documents(block, part: str, *, lenient: bool = False) -> M2E2Corpus:
    """The sentences of one part's documents (no photos, no cross-media pairs)."""
    corpus = read_m2e2(block.dir or shared_data_path("m2e2"), lenient=lenient)
    return select_documents(corpus, read_doc_split(split_path(block)), part, photos=False)
