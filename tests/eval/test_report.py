"""The HTML report: the scorer's numbers, a drawn image for every photo with predictions,
error-kind and event-type filters that hold the right cards, and nothing fetched."""

import base64
import collections
import io
import json

import pytest
from PIL import Image

from rmpl_jax.eval.errors import KINDS, error_counts, find_errors
from rmpl_jax.eval.html_tables import percent
from rmpl_jax.eval.photos import THUMBNAIL_SIDE
from rmpl_jax.eval.report import render_report, write_report
from rmpl_jax.eval.scorer import score, strict_items
from rmpl_jax.m2e2.records import Sentence, Span, TextEvent
from tests.testing.html_page import parse_page
from tests.testing.report_cases import (
    DIE,
    EXPECTED_PHOTO_KINDS,
    EXPECTED_SENTENCE_KINDS,
    PHOTO_WITHOUT_FILE,
    small_case,
)


@pytest.fixture
def case(tmp_path):
    corpus, predictions = small_case(tmp_path)
    page, _ = render_report(corpus, predictions, title="small case")
    return corpus, predictions, parse_page(page), page


def _cards(root, kind):
    """Sentence cards by sentence id (kind "sentence") or photo cards by image id ("photo")."""
    key = "data-sentence-id" if kind == "sentence" else "data-image-id"
    return {c.attrs[key]: c for c in root.find_all("div", cls=kind)}


def test_scores_in_the_page_are_the_scorers(case):
    corpus, predictions, root, _ = case
    expected = score(corpus, predictions).as_dict()
    rows = {
        r.attrs["data-setting"]: r for r in root.find("table", id="scores").find_all("tr") if "data-setting" in r.attrs
    }
    assert set(rows) == set(expected) - {"variants"} | set(expected["variants"])
    for name, row in rows.items():
        s = expected[name] if name in expected else expected["variants"][name]
        cells = {td.attrs["data-col"]: td.text() for td in row.find_all("td")}
        assert cells == {
            "p": percent(s["p"]),
            "r": percent(s["r"]),
            "f1": percent(s["f1"]),
            "tp": str(s["tp"]),
            "pred": str(s["pred"]),
            "gold": str(s["gold"]),
        }, name
    assert json.loads(root.find("script", id="scores-json").text()) == expected
    # not a vacuous comparison: the case has hits and misses
    assert 0 < expected["text_event"]["f1"] < 1 and 0 < expected["image_argument"]["f1"] < 1


def test_error_table_is_the_error_count(case):
    corpus, predictions, root, _ = case
    counts = error_counts(find_errors(strict_items(corpus, predictions)))
    table = root.find("table", id="error-counts")
    for row in table.find_all("tr"):
        if "data-setting" in row.attrs:
            for td in row.find_all("td"):
                assert (
                    int(td.text()) == counts[row.attrs["data-setting"]][(td.attrs["data-side"], td.attrs["data-kind"])]
                )


def test_every_photo_with_predictions_has_a_drawn_image(case):
    corpus, predictions, root, _ = case
    photos = _cards(root, "photo")
    assert set(photos) == set(EXPECTED_PHOTO_KINDS)  # every photo with a file, predicted or not
    for p in predictions.images:
        if corpus.images.get(p.image_id) and corpus.images[p.image_id].path:
            src = photos[p.image_id].find("img").attrs["src"]
            assert src.startswith("data:image/jpeg;base64,")
            thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            assert max(thumb.size) <= THUMBNAIL_SIDE and thumb.size[0] / thumb.size[1] == pytest.approx(400 / 300, 0.01)
    # the predicted photo without a file is named, not dropped; so is the annotated one
    warning = " ".join(p.text() for p in root.find_all("p", cls="warn"))
    assert PHOTO_WITHOUT_FILE in warning and "d_p4" in warning and "2 annotated or predicted photos" in warning


def test_error_kind_and_type_filters_hold_the_right_cards(case):
    _, _, root, _ = case
    sentences, photos = _cards(root, "sentence"), _cards(root, "photo")
    assert {k: json.loads(c.attrs["data-errors"]) for k, c in sentences.items()} == EXPECTED_SENTENCE_KINDS
    assert {k: json.loads(c.attrs["data-errors"]) for k, c in photos.items()} == EXPECTED_PHOTO_KINDS
    assert json.loads(sentences["d_2"].attrs["data-types"]) == ["Conflict:Attack", DIE]
    options = [o.attrs["value"] for o in root.find("select", id="filter-error").find_all("option")]
    assert options == ["", "any", "none", *KINDS]
    types = [o.attrs["value"] for o in root.find("select", id="filter-type").find_all("option")]
    on_cards = {t for c in [*sentences.values(), *photos.values()] for t in json.loads(c.attrs["data-types"])}
    assert on_cards <= set(types)
    # each card lists its errors with their kinds
    listed = collections.Counter(
        li.attrs["data-kind"] for li in sentences["d_1"].find_all("li") if "data-kind" in li.attrs
    )
    assert listed == {"wrong_role": 2}


def test_text_is_highlighted_and_escaped(tmp_path):
    corpus, predictions = small_case(tmp_path)
    words = ("<b>Rebels</b>", "attacked", "A&B", ".")
    corpus.sentences["d_x"] = Sentence("d_x", words, (TextEvent("Conflict:Attack", Span(1, 2)),), doc_id="d")
    page, _ = render_report(corpus, predictions, title="<title>")
    root = parse_page(page)
    card = _cards(root, "sentence")["d_x"]
    gold_line = card.find_all("p", cls="sent")[0]
    assert gold_line.find("span", cls="trg").text() == "attacked"
    assert "<b>Rebels</b>" in card.text() and "&lt;b&gt;Rebels" in page and "<b>Rebels" not in page
    assert "<title>&lt;title&gt;</title>" in page


def test_page_is_self_contained(case, tmp_path):
    corpus, predictions, root, page = case
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert all(img.attrs["src"].startswith("data:") for img in root.find_all("img"))
    assert not [s for s in root.find_all("script") if "src" in s.attrs]
    path = tmp_path / "out" / "report.html"
    report = write_report(str(path), corpus, predictions, title="small case")
    assert path.read_text(encoding="utf-8") == page and report.as_dict() == score(corpus, predictions).as_dict()


def test_a_photo_file_that_cannot_be_opened_is_named(tmp_path):
    corpus, predictions = small_case(tmp_path)
    with open(corpus.images["d_p2"].path, "wb") as f:
        f.write(b"not a picture")
    root = parse_page(render_report(corpus, predictions, title="small case")[0])
    assert "d_p2" not in _cards(root, "photo") and len(_cards(root, "photo")) == len(EXPECTED_PHOTO_KINDS) - 1
    assert "could not open d_p2: " in " ".join(p.text() for p in root.find_all("p", cls="warn"))
