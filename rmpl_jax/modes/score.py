"""`mode=score`: read M2E2, score a predictions file (or the gold itself as a check of
data and scorer), write `metrics.json` and print the strict-protocol table."""

from __future__ import annotations

import json
import os

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.scorer import gold_as_predictions, score
from rmpl_jax.eval.tables import format_table
from rmpl_jax.io import paths
from rmpl_jax.io.shared_data import shared_data_path
from rmpl_jax.m2e2.predictions import read_predictions


def run(config, workdir: str) -> dict:
    """Scores `config.predictions` (empty: the gold annotations) on `config.m2e2_dir`."""
    m2e2_dir = config.m2e2_dir or shared_data_path("m2e2")
    images_dir = config.images_dir or None
    corpus = read_m2e2(m2e2_dir, images_dir, lenient=config.lenient)
    print(
        f"M2E2: {len(corpus.sentences)} sentences, {len(corpus.annotated_images())} annotated "
        f"of {len(corpus.images)} photos, {len(corpus.coref)} cross-media pairs"
    )
    if images_dir:
        print(f"photos missing from {images_dir}: {len(corpus.missing_images)}")
    print(corpus.report.summary())
    for problem in corpus.report.problems:
        print("  skipped:", problem)
    if config.predictions:
        predictions = read_predictions(config.predictions)
        print(f"scoring {config.predictions}")
    else:
        predictions = gold_as_predictions(corpus)
        print("no predictions given: scoring the gold annotations against themselves")
    report = score(corpus, predictions)
    print(format_table(report))
    metrics = report.as_dict()
    path = paths.write_text(os.path.join(workdir, "metrics.json"), json.dumps(metrics, indent=1))
    print(f"wrote {path}")
    return metrics
