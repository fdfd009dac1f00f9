"""Text-event errors of a predictions file: per event type and the most frequent trigger words.

    python tools/error_analysis.py --annotations DIR --predictions FILE \
        [--split FILE --part dev] [--top 20]

Prints markdown: strict text_event counts per type with missed / wrong type / spurious, then
the `--top` most frequent missed and spurious triggers (lower-cased) with their counts.
"""

from __future__ import annotations

import argparse
import sys

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.errors import find_errors
from rmpl_jax.eval.scorer import score, strict_items
from rmpl_jax.eval.trigger_errors import format_type_errors, trigger_words, type_errors
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.doc_split import read_doc_split, select_documents
from rmpl_jax.m2e2.predictions import PredictionError, read_predictions


def _word_table(title: str, words) -> str:
    rows = [f"| {word} | {n} |" for word, n in words]
    return "\n".join([f"| {title} | count |", "| --- | --- |", *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, help="M2E2 annotations directory")
    parser.add_argument("--predictions", required=True, help="predictions JSONL file")
    parser.add_argument("--split", default="", help="document split JSON: one part's documents' text")
    parser.add_argument("--part", default="dev", help="the part of --split to analyse")
    parser.add_argument("--top", type=int, default=20, help="how many trigger words to list")
    args = parser.parse_args(argv)
    try:
        whole = corpus = read_m2e2(args.annotations)
        predictions = read_predictions(args.predictions)
        if args.split:  # scored on the part, as tools/score_m2e2.py does; words from every sentence
            corpus = select_documents(whole, read_doc_split(args.split), args.part, photos=False)
    except (DataError, PredictionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    errors = find_errors(strict_items(corpus, predictions))
    print(format_type_errors(type_errors(score(corpus, predictions).settings["text_event"], errors)))
    for kind in ("missed", "spurious"):
        print()
        print(_word_table(f"{kind} trigger", trigger_words(errors, whole.sentences, kind).most_common(args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
