"""`mode=report`: the HTML report of a predictions file on M2E2, `W/report.html`."""

from __future__ import annotations

import os

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.report import write_report
from rmpl_jax.eval.scorer import gold_as_predictions
from rmpl_jax.eval.tables import format_table
from rmpl_jax.io import paths
from rmpl_jax.io.shared_data import shared_data_path
from rmpl_jax.m2e2.predictions import read_predictions


def images_dir_of(config, m2e2_dir: str) -> str | None:
    """`config.images_dir`, else `m2e2_dir/images` when that folder exists, else None."""
    if config.images_dir:
        return config.images_dir
    default = os.path.join(m2e2_dir, "images")
    return default if paths.is_dir(default) else None


def run(config, workdir: str) -> dict:
    """Scores `config.predictions` (empty: the gold against itself) and writes the page."""
    m2e2_dir = config.m2e2_dir or shared_data_path("m2e2")
    corpus = read_m2e2(m2e2_dir, images_dir_of(config, m2e2_dir), lenient=config.lenient)
    print(corpus.report.summary())
    if config.predictions:
        predictions = read_predictions(config.predictions)
        title = config.title or f"M2E2: {os.path.basename(config.predictions)}"
    else:
        predictions = gold_as_predictions(corpus)
        title = config.title or "M2E2: the gold annotations against themselves"
    notes = {"predictions": config.predictions or "(the gold)", "annotations": m2e2_dir}
    if corpus.report.skipped or corpus.report.counts:
        notes["annotations read"] = corpus.report.summary()
    path = os.path.join(workdir, "report.html")
    report = write_report(path, corpus, predictions, title=title, notes=notes)
    print(format_table(report))
    print(f"wrote {path}")
    return report.as_dict()
