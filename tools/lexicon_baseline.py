"""The trigger-lexicon baseline on an M2E2 document split (`rmpl_jax/eval/lexicon.py`).

    python tools/lexicon_baseline.py [--split FILE] [--annotations DIR] [--out DIR]

Learns the lexicon from the `train` documents, chooses the threshold by strict text_event F1
on the `dev` documents, then predicts the `test` documents once and scores them strictly.
Prints the dev sweep and the test table; with --out writes predictions.jsonl and
metrics.json there. Empty paths: the shared data's.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Sequence

_REPO = pathlib.Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(_REPO))

from rmpl_jax.data.m2e2 import read_m2e2  # noqa: E402
from rmpl_jax.data.m2e2_docs import DEFAULT_SPLIT  # noqa: E402
from rmpl_jax.eval.lexicon import TriggerLexicon, choose_threshold  # noqa: E402
from rmpl_jax.eval.scorer import score  # noqa: E402
from rmpl_jax.eval.tables import format_table  # noqa: E402
from rmpl_jax.io.shared_data import shared_data_path  # noqa: E402
from rmpl_jax.m2e2.doc_split import read_doc_split, select_documents  # noqa: E402
from rmpl_jax.m2e2.predictions import write_predictions  # noqa: E402


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", default="", help="document split JSON (default: the shared one)")
    p.add_argument("--annotations", default="", help="M2E2 annotations directory (default: the shared one)")
    p.add_argument("--out", default="", help="directory for predictions.jsonl and metrics.json")
    args = p.parse_args(argv)

    corpus = read_m2e2(args.annotations or shared_data_path("m2e2"))
    split = read_doc_split(args.split or shared_data_path(*DEFAULT_SPLIT))
    train, dev, test = (select_documents(corpus, split, part, photos=False) for part in ("train", "dev", "test"))
    lexicon = TriggerLexicon.learn(train.sentences.values())
    threshold, sweep = choose_threshold(lexicon, dev)
    print(f"lexicon: {len(lexicon.entries)} trigger words from {len(train.sentences)} train sentences")
    print("dev text_event F1 by threshold: " + ", ".join(f"{t:.2f}: {100 * s['f1']:.1f}" for t, s in sweep.items()))
    print(f"chosen on dev: threshold {threshold:.2f} (F1 {100 * sweep[threshold]['f1']:.1f})")
    predictions = lexicon.predict(test.sentences.values(), threshold)
    report = score(test, predictions)
    print(f"test documents ({len(test.sentences)} sentences), strict protocol:")
    print(format_table(report))
    metrics = dict(report.as_dict(), threshold=threshold, dev_sweep={str(t): s for t, s in sweep.items()})
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_predictions(os.path.join(args.out, "predictions.jsonl"), predictions)
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
        print(f"wrote {args.out}/predictions.jsonl and metrics.json")
    return metrics


if __name__ == "__main__":
    main()
