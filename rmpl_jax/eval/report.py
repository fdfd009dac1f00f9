"""The HTML report of a predictions file: strict scores and variants (the scorer's numbers),
P/R/F1 per event type, errors by kind, confusion of event types, every photo on disk with its
gold and predicted boxes, and every sentence with an event, its triggers and arguments
highlighted; filters by event type and error kind. One self-contained file: photos are
embedded as data URIs, style and script are inline, nothing is fetched.
"""

from __future__ import annotations

import html
import json

from rmpl_jax.eval import html_tables
from rmpl_jax.eval.confusion import photo_confusion, trigger_confusion
from rmpl_jax.eval.errors import KINDS, error_counts, find_errors
from rmpl_jax.eval.report_assets import SCRIPT, STYLE
from rmpl_jax.eval.report_cards import Cards, build_cards
from rmpl_jax.eval.scorer import ScoreReport, score, strict_items
from rmpl_jax.io import paths
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.predictions import PredictionSet

LISTED_IDS = 20  # ids of photos without a file listed by name; the rest are counted


def _filters(types: list[str]) -> str:
    type_options = '<option value="">all event types</option>' + "".join(
        f'<option value="{html.escape(t)}">{html.escape(t)}</option>' for t in types
    )
    kinds = [("", "all cards"), ("any", "any error"), ("none", "no error")]
    kinds += [(k, k.replace("_", " ")) for k in KINDS]
    error_options = "".join(f'<option value="{v}">{label}</option>' for v, label in kinds)
    return (
        '<div class="filters">'
        f'<label>event type <select id="filter-type">{type_options}</select></label> '
        f'<label>error kind <select id="filter-error">{error_options}</select></label> '
        '<span id="filter-count"></span>'
        '<div class="legend"><span class="gold">gold</span> green boxes, role at the top '
        '<span class="pred">predicted</span> magenta boxes, role at the bottom '
        '<span>text: <span class="sent"><span class="trg">trigger</span> '
        '<span class="arg">argument</span></span></span></div></div>'
    )


def _photo_note(cards: Cards) -> str:
    notes = []
    if cards.photos_without_file:
        ids = ", ".join(html.escape(i) for i in cards.photos_without_file[:LISTED_IDS])
        more = len(cards.photos_without_file) - LISTED_IDS
        notes.append(
            f"{len(cards.photos_without_file)} annotated or predicted photos have no file on disk and are not "
            f"shown (scored all the same): {ids}{f' and {more} more' if more > 0 else ''}"
        )
    notes += [f"could not open {html.escape(u)}" for u in cards.unreadable_photos]
    return "".join(f'<p class="warn">{n}</p>' for n in notes)


def render_report(
    corpus: M2E2Corpus, predictions: PredictionSet, *, title: str, notes: dict | None = None
) -> tuple[str, ScoreReport]:
    """The page's HTML and the scorer's report it shows."""
    report = score(corpus, predictions)
    items = strict_items(corpus, predictions)
    errors = find_errors(items)
    cards = build_cards(corpus, predictions, items, errors)
    types = html_tables.event_types(report)
    sentence_note = (
        f"; {cards.sentences_not_in_gold} predicted sentences are not in the gold corpus"
        if cards.sentences_not_in_gold
        else ""
    )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(corpus.sentences)} sentences, {len(corpus.images)} photos ({len(cards.photos)} shown), "
        f"{len(corpus.coref)} cross-media pairs in the gold; strict protocol (percent).</p>",
        "<h2>Scores</h2>",
        html_tables.scores_table(report),
        f'<script type="application/json" id="scores-json">{_json_for_script(report.as_dict())}</script>',
        "<h2>Errors by kind</h2>",
        html_tables.errors_table(error_counts(errors)),
        "<h2>Per event type</h2>",
        html_tables.by_type_tables(report),
        "<h2>Confusion of event types</h2>",
        '<div class="tables">',
        html_tables.confusion_table(trigger_confusion(items.text_event), "text triggers", "confusion-text"),
        html_tables.confusion_table(photo_confusion(items.image_event), "photos", "confusion-photos"),
        "</div>",
    ]
    if notes:
        body += ["<h2>Run notes</h2>", html_tables.notes_table(notes)]
    body += [
        "<h2>Photos and sentences</h2>",
        _filters(types),
        f"<h3>Photos ({len(cards.photos)})</h3>",
        _photo_note(cards),
        '<div class="cards" id="photos">' + "".join(cards.photos) + "</div>",
        f"<h3>Sentences with a gold or predicted event ({len(cards.sentences)}{sentence_note})</h3>",
        '<div class="cards" id="sentences">' + "".join(cards.sentences) + "</div>",
    ]
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
    return page, report


def _json_for_script(value) -> str:
    # "</" would end the script element early.
    return json.dumps(value).replace("</", "<\\/")


def write_report(
    path: str, corpus: M2E2Corpus, predictions: PredictionSet, *, title: str, notes: dict | None = None
) -> ScoreReport:
    """Writes the page to `path` (its folder is created); returns the scores it shows."""
    page, report = render_report(corpus, predictions, title=title, notes=notes)
    paths.write_text(path, page)
    return report
