"""Held-out scoring of the demo: decode the held-out synthetic split with the trained
model and score it under the strict M2E2 protocol (same scorer as the benchmark)."""

from __future__ import annotations

import json
import os

from rmpl_jax.data.m2e2 import M2E2Corpus
from rmpl_jax.data.read_report import ReadReport
from rmpl_jax.data.synthetic import SyntheticSplit
from rmpl_jax.evaluate import score
from rmpl_jax.predictions import write_predictions
from rmpl_jax.score_table import format_table


def split_corpus(split: SyntheticSplit) -> M2E2Corpus:
    """A synthetic split as the scorer's gold corpus."""
    return M2E2Corpus(sentences={s.sentence_id: s for s in split.sentences},
                      images={i.image_id: i for i in split.images},
                      coref=split.pairs, missing_images=(), report=ReadReport(split.name))


def score_heldout(model, run, split: SyntheticSplit) -> dict:
    """Predicts, writes `heldout/predictions.jsonl` and `heldout/metrics.json`, prints the table."""
    from rmpl_jax.predict import predict_records

    config = run.config
    predictions, stats = predict_records(
        model, run.processor, sentences=split.sentences, images=split.images,
        image_sizes=split.image_sizes, codec=run.codec, image_side=config.data.image_side,
        batch_size=config.eval.batch_size, max_new_tokens=config.eval.max_new_tokens,
        pipeline="stage2" if config.stages[-1] == "stage2" else "joint")
    out_dir = os.path.join(run.workdir, "heldout")
    os.makedirs(out_dir, exist_ok=True)
    write_predictions(os.path.join(out_dir, "predictions.jsonl"), predictions)
    report = score(split_corpus(split), predictions)
    metrics = report.as_dict()
    metrics["decode"] = stats
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1, default=str)
    print(f"held-out synthetic data ({len(split.sentences)} sentences, {len(split.images)} photos), "
          "strict protocol:")
    print(format_table(report))
    return metrics
