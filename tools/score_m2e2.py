"""Scores M2E2 predictions under the strict protocol.

    python tools/score_m2e2.py --annotations DIR --predictions FILE [--format json|table]
        [--split FILE --part test]

With --split, the gold is cut to one part's documents (`m2e2/doc_split.py`; sentences only).

JSON on stdout: the six settings and `variants`, each {p, r, f1, tp, pred, gold}.
"""

from __future__ import annotations

import argparse
import json
import sys

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.scorer import score
from rmpl_jax.eval.tables import format_table
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.doc_split import read_doc_split, select_documents
from rmpl_jax.m2e2.predictions import PredictionError, read_predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, help="M2E2 annotations directory")
    parser.add_argument("--predictions", required=True, help="predictions JSONL file")
    parser.add_argument("--format", choices=("json", "table"), default="json")
    parser.add_argument("--split", default="", help="document split JSON: score one part's documents' text")
    parser.add_argument("--part", default="test", help="the part of --split to score")
    args = parser.parse_args(argv)
    try:
        corpus = read_m2e2(args.annotations)
        predictions = read_predictions(args.predictions)
        if args.split:
            corpus = select_documents(corpus, read_doc_split(args.split), args.part, photos=False)
    except (DataError, PredictionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = score(corpus, predictions)
    if args.format == "json":
        print(json.dumps(report.as_dict()))
    else:
        print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
