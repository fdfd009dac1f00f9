"""Training records of the `multimedia` task: (sentence, photo) pairs with the event both report,
or none.

- **positives**: the cross-media pairs of the data (M2E2's `crossmedia_coref.txt` shape; the
  synthetic corpus emits its own): target = the shared event in both modalities;
- **same-document negatives**: every other (sentence, photo) pair of a document (a sentence
  with another event, or none; a photo of another event, or none): target `none`. These are
  the pairs the predict pipeline asks about, so they are all kept by default;
- **other-document negatives**: for a positive, photos of the *same* event type from other
  documents: target `none`. They teach that a shared type is not a shared event, which only
  holds when photos carry more than their type: the synthetic photos do not (a photo is its
  type's colour and figures), so there they contradict the positives and are off by default.

MNRE gives no multimedia targets: its text-image pairs carry a relation between two entities,
not an event, so it stays a stage-1 task (its relations are the grounding signal RMPL uses).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence

from rmpl_jax.data.hashed_share import in_share
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2.records import CorefPair, ImageItem, MultimediaPair, Sentence, image_id_of


@dataclasses.dataclass(frozen=True)
class PairSettings:
    """`data.multimedia` of a config: the share of same-document negatives kept (chosen by a hash
    of the pair, so every run and process keeps the same ones) and how many other-document
    negatives are drawn per positive."""

    same_doc_negatives: float = 1.0
    other_doc_negatives: int = 0

    @classmethod
    def from_config(cls, block) -> PairSettings:
        if block is None:
            return cls()
        return cls(float(block.same_doc_negatives), int(block.other_doc_negatives))


def document_photos(sentence: Sentence, photos: dict[str, ImageItem]) -> list[ImageItem]:
    """The photos of the sentence's document that are on disk (its `images` field), in order."""
    found = (photos.get(image_id_of(name)) for name in dict.fromkeys(sentence.images))
    return [p for p in found if p is not None and p.path]


def training_pairs(
    sentences: Sequence[Sentence],
    images: Iterable[ImageItem],
    coref: Iterable[CorefPair],
    settings: PairSettings = PairSettings(),
    *,
    seed: int = 0,
    skips: SkipRegistry | None = None,
) -> list[MultimediaPair]:
    """Positives, same-document and other-document negatives (module docstring). Coref lines
    whose sentence or photo is absent (or the photo not on disk), or whose type one side lacks,
    are counted in `skips` and left out."""
    photos = {i.image_id: i for i in images}
    by_id = {s.sentence_id: s for s in sentences}
    skips = skips if skips is not None else SkipRegistry()
    positives: dict[tuple[str, str], MultimediaPair] = {}
    for c in coref:
        s, photo = by_id.get(c.sentence_id), photos.get(c.image_id)
        if s is None or photo is None or not photo.path:
            skips.add("multimedia: cross-media pairs whose sentence or photo is not in the data", c.sentence_id)
            continue
        if c.event_type not in {e.event_type for e in s.events} or c.event_type not in {
            e.event_type for e in photo.events
        }:
            skips.add("multimedia: cross-media pairs whose type the sentence or the photo lacks", c.sentence_id)
            continue
        positives.setdefault((s.sentence_id, photo.image_id), MultimediaPair(s, photo, c.event_type))
    out = list(positives.values())
    for s in sentences:
        for photo in document_photos(s, photos):
            key = (s.sentence_id, photo.image_id)
            if key not in positives and in_share("\t".join(key), settings.same_doc_negatives):
                out.append(MultimediaPair(s, photo, None))
    if settings.other_doc_negatives:
        out += _other_document_negatives(list(positives.values()), photos.values(), settings.other_doc_negatives, seed)
    return out


def _other_document_negatives(
    positives: Sequence[MultimediaPair], photos: Iterable[ImageItem], per_positive: int, seed: int
) -> list[MultimediaPair]:
    by_type: dict[str, list[ImageItem]] = {}
    for p in photos:
        if p.path:
            for t in dict.fromkeys(e.event_type for e in p.events):
                by_type.setdefault(t, []).append(p)
    rng = random.Random(f"rmpl-multimedia-negatives:{seed}")
    out = []
    for pair in positives:
        own = {image_id_of(name) for name in pair.sentence.images}
        others = [p for p in by_type.get(pair.event_type, ()) if p.image_id not in own]
        for photo in rng.sample(others, min(per_positive, len(others))):
            out.append(MultimediaPair(pair.sentence, photo, None))
    return out
