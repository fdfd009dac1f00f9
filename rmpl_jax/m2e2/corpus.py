"""The gold side of a benchmark: sentences, photos and cross-media pairs, keyed by id.

`data.m2e2.read_m2e2` builds it from the M2E2 files; a synthetic split becomes one with
`SyntheticSplit.as_corpus`; the scorer reads it.
"""

from __future__ import annotations

import dataclasses

from rmpl_jax.io.read_report import ReadReport
from rmpl_jax.m2e2.records import CorefPair, ImageItem, Sentence


@dataclasses.dataclass(frozen=True)
class M2E2Corpus:
    """The whole benchmark, keyed by id (insertion order = file order)."""

    sentences: dict[str, Sentence]
    images: dict[str, ImageItem]
    coref: tuple[CorefPair, ...]
    missing_images: tuple[str, ...]  # referenced but absent from images_dir (empty if none given)
    report: ReadReport  # what lenient mode skipped, and counts of dropped roles

    def annotated_images(self) -> dict[str, ImageItem]:
        return {k: v for k, v in self.images.items() if v.events}
