"""A trigger-lexicon baseline for text event mentions, learned from training sentences.

Each lowercased word's most frequent event type among its single-word trigger occurrences,
used wherever the word was a trigger in at least `threshold` of its training occurrences
(any type); the threshold is chosen on a development part. It finds no arguments, so every
argument setting scores 0. Multi-word triggers (18 of M2E2's 1,297) are not learned.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence

from rmpl_jax.eval.scorer import score
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.predictions import PredictionSet, TextPrediction
from rmpl_jax.m2e2.records import Sentence, Span, TextEvent

THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 21))  # 0.05 .. 1.0


@dataclasses.dataclass(frozen=True)
class LexiconEntry:
    event_type: str
    share: float  # trigger occurrences (any type) / all occurrences of the word
    count: int  # all training occurrences of the word


@dataclasses.dataclass(frozen=True)
class TriggerLexicon:
    entries: dict[str, LexiconEntry]

    @classmethod
    def learn(cls, sentences: Iterable[Sentence]) -> TriggerLexicon:
        """Counts every word's occurrences and its single-word trigger occurrences by type."""
        seen: collections.Counter[str] = collections.Counter()
        as_trigger: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for s in sentences:
            seen.update(w.lower() for w in s.words)
            for e in s.events:
                if e.trigger.end - e.trigger.start == 1:
                    as_trigger[s.words[e.trigger.start].lower()][e.event_type] += 1
        entries = {}
        for word, types in as_trigger.items():
            # most frequent type; ties go to the alphabetically first, so learning is deterministic
            event_type = min(types, key=lambda t: (-types[t], t))
            entries[word] = LexiconEntry(event_type, sum(types.values()) / seen[word], seen[word])
        return cls(entries)

    def predict(self, sentences: Iterable[Sentence], threshold: float) -> PredictionSet:
        """One text prediction per sentence: an event at each word whose share >= threshold."""
        out = PredictionSet()
        for s in sentences:
            events = []
            for i, w in enumerate(s.words):
                entry = self.entries.get(w.lower())
                if entry is not None and entry.share >= threshold:
                    events.append(TextEvent(entry.event_type, Span(i, i + 1)))
            out.text.append(TextPrediction(s.sentence_id, tuple(events)))
        return out


def choose_threshold(
    lexicon: TriggerLexicon, dev: M2E2Corpus, thresholds: Sequence[float] = THRESHOLDS
) -> tuple[float, dict[float, dict]]:
    """The threshold with the best strict text_event F1 on `dev` (ties: the lowest), and
    every threshold's text_event scores."""
    scores = {}
    for t in thresholds:
        scores[t] = score(dev, lexicon.predict(dev.sentences.values(), t)).as_dict()["text_event"]
    best = max(thresholds, key=lambda t: (scores[t]["f1"], -t))
    return best, scores
