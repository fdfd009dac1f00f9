"""Held-out scoring: a split's predictions against its gold under the strict M2E2 protocol
(the benchmark's scorer), written beside the run and printed as a table."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

from rmpl_jax.eval.report import write_report
from rmpl_jax.eval.scorer import score
from rmpl_jax.eval.tables import format_table
from rmpl_jax.io import paths
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.predictions import PredictionSet, write_predictions


@dataclasses.dataclass(frozen=True)
class HeldoutData:
    """Data a training run scores when it ends. image_sizes: image_id -> (width, height)
    (photos not listed are measured from their files)."""

    name: str
    corpus: M2E2Corpus
    image_sizes: Mapping[str, tuple[int, int]] = dataclasses.field(default_factory=dict)


def write_scores(
    corpus: M2E2Corpus, predictions: PredictionSet, stats: dict, out_dir: str, report_path: str | None = None
) -> dict:
    """Writes `out_dir/predictions.jsonl` and `out_dir/metrics.json` (scores plus the decode
    `stats`), and the HTML report to `report_path` when given; prints the table and returns
    the metrics."""
    write_predictions(os.path.join(out_dir, "predictions.jsonl"), predictions)
    report = score(corpus, predictions)
    metrics = report.as_dict()
    metrics["decode"] = stats
    paths.write_text(os.path.join(out_dir, "metrics.json"), json.dumps(metrics, indent=1, default=str))
    print(f"held-out data ({len(corpus.sentences)} sentences, {len(corpus.images)} photos), strict protocol:")
    print(format_table(report))
    if report_path:
        write_report(report_path, corpus, predictions, title="Held-out data: strict M2E2 scores", notes=stats)
        print(f"wrote {report_path}")
    return metrics
