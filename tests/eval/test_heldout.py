"""Held-out scoring writes predictions, metrics and, when asked, the report with the split's
photos (the demo's W/report.html)."""

import json

from rmpl_jax.data.synthetic import generate_split
from rmpl_jax.eval.heldout import write_scores
from rmpl_jax.eval.scorer import gold_as_predictions
from tests.testing.html_page import parse_page


def test_heldout_scores_and_report(tmp_path, capsys):
    split = generate_split("heldout", 3, tmp_path / "images", seed=1, images_per_doc=(1, 2))
    corpus = split.as_corpus()
    stats = {"unfinished": 0, "parse_failures": {"text_mention": 0}}
    report = tmp_path / "report.html"
    metrics = write_scores(corpus, gold_as_predictions(corpus), stats, str(tmp_path / "heldout"), str(report))
    assert metrics["text_event"]["f1"] == 1.0 and metrics["decode"] == stats
    assert json.loads((tmp_path / "heldout" / "metrics.json").read_text())["text_event"]["f1"] == 1.0
    assert (tmp_path / "heldout" / "predictions.jsonl").exists()
    root = parse_page(report.read_text(encoding="utf-8"))
    photos = root.find_all("div", cls="photo")
    assert len(photos) == len(split.images) >= 3
    assert all(p.find("img").attrs["src"].startswith("data:image/jpeg;base64,") for p in photos)
    assert '{"text_mention": 0}' in root.find("table", cls="notes").text()
    assert f"wrote {report}" in capsys.readouterr().out
