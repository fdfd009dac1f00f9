"""`mode=report` on M2E2: a small predictions file -> W/report.html with the nine photos that
exist on disk drawn, through the same dispatch as the command line."""

import importlib
import json

from configs import report as report_config
from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.html_tables import percent
from rmpl_jax.eval.scorer import score
from rmpl_jax.m2e2.predictions import PredictionSet, read_predictions, write_predictions
from rmpl_jax.m2e2.records import image_id_of
from rmpl_jax.main import MODES
from tests.testing.html_page import parse_page
from tests.testing.report_cases import perturbed_gold


def test_report_mode_draws_every_photo_on_disk(tmp_path, m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir), str(m2e2_dir / "images"))
    on_disk = {i for i, item in corpus.images.items() if item.path}
    assert len(on_disk) == 9
    full = perturbed_gold(corpus)
    # a small file: the photos' records, their sentences, and their pairs
    sentences = {s.sentence_id for s in corpus.sentences.values() if any(image_id_of(f) in on_disk for f in s.images)}
    small = PredictionSet(
        text=[p for p in full.text if p.sentence_id in sentences],
        images=[p for p in full.images if p.image_id in on_disk],
        coref=[c for c in full.coref if c.image_id in on_disk],
    )
    predictions = tmp_path / "predictions.jsonl"
    write_predictions(str(predictions), small)
    assert len(predictions.read_text().splitlines()) < 200

    config = report_config.get_config()
    config.predictions = str(predictions)
    config.m2e2_dir = str(m2e2_dir)  # images_dir left empty: m2e2/images is found
    metrics = importlib.import_module(MODES["report"]).run(config, str(tmp_path / "W"))

    root = parse_page((tmp_path / "W" / "report.html").read_text(encoding="utf-8"))
    expected = score(corpus, read_predictions(str(predictions))).as_dict()
    assert metrics == expected
    assert json.loads(root.find("script", id="scores-json").text()) == expected
    row = root.find("tr", data_setting="image_event")
    assert row.find("td", data_col="f1").text() == percent(expected["image_event"]["f1"])
    photos = {c.attrs["data-image-id"]: c for c in root.find_all("div", cls="photo")}
    assert set(photos) == on_disk
    predicted = {p.image_id for p in small.images}
    assert predicted and predicted <= set(photos)
    assert all(photos[i].find("img").attrs["src"].startswith("data:image/jpeg;base64,") for i in photos)
