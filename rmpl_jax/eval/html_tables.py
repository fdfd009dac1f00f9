"""The report's tables as HTML: strict scores and variants, P/R/F1 per event type, errors by
kind, and confusion of event types. Numbers come from the scorer's `ScoreReport`."""

from __future__ import annotations

import collections
import html
import json

from rmpl_jax.eval.confusion import Confusion
from rmpl_jax.eval.errors import ERROR_SETTINGS
from rmpl_jax.eval.scorer import ScoreReport, prf
from rmpl_jax.m2e2.ontology import EVENT_TYPES

SCORE_COLUMNS = ("p", "r", "f1", "tp", "pred", "gold")
NONE_LABEL = "(none)"


def percent(value: float) -> str:
    """A ratio as the page shows it: percent with one decimal."""
    return f"{100 * value:.1f}"


def _score_row(name: str, s: dict) -> str:
    cells = "".join(
        f'<td class="num" data-col="{c}">{percent(s[c]) if c in ("p", "r", "f1") else s[c]}</td>' for c in SCORE_COLUMNS
    )
    return f'<tr data-setting="{name}"><th>{name}</th>{cells}</tr>'


def _header(first: str, columns) -> str:
    return "<tr>" + f"<th>{first}</th>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"


def scores_table(report: ScoreReport) -> str:
    """The six strict settings, then the named variants, each P/R/F1 (percent) and counts."""
    rows = [_header("setting", ("P", "R", "F1", "tp", "pred", "gold"))]
    rows += [_score_row(n, prf(c.tp, c.pred, c.gold)) for n, c in report.settings.items()]
    rows.append('<tr><th colspan="7" class="sub">named variants (reported beside strict)</th></tr>')
    rows += [_score_row(n, prf(c.tp, c.pred, c.gold)) for n, c in report.variants.items()]
    return '<table class="scores" id="scores">' + "".join(rows) + "</table>"


def event_types(report: ScoreReport) -> list[str]:
    """The ontology's types, then any other type the predictions used, sorted."""
    seen = {t for c in report.settings.values() for t in c.by_type}
    return list(EVENT_TYPES) + sorted(seen - set(EVENT_TYPES))


def by_type_tables(report: ScoreReport) -> str:
    """One small table per strict setting: P, R, F1 (percent) and gold count per event type."""
    by_type = report.by_type()
    out = []
    for name in report.settings:
        rows = [_header("event type", ("P", "R", "F1", "gold"))]
        for t in event_types(report):
            s = by_type[name].get(t)
            if s is None:
                cells = '<td class="num">-</td>' * 4
            else:
                cells = "".join(f'<td class="num">{percent(s[c])}</td>' for c in ("p", "r", "f1"))
                cells += f'<td class="num">{s["gold"]}</td>'
            rows.append(f'<tr data-type="{html.escape(t)}"><th>{html.escape(t)}</th>{cells}</tr>')
        out.append(f'<table class="bytype" data-setting="{name}"><caption>{name}</caption>{"".join(rows)}</table>')
    return '<div class="tables">' + "".join(out) + "</div>"


def errors_table(counts: dict[str, collections.Counter]) -> str:
    """False positives and false negatives of each strict setting, by kind."""
    columns = (
        ("pred", "spurious"),
        ("pred", "wrong_type"),
        ("pred", "wrong_role"),
        ("gold", "missed"),
        ("gold", "wrong_type"),
        ("gold", "wrong_role"),
    )
    head = (
        '<tr><th rowspan="2">setting</th><th colspan="3">false positives</th>'
        '<th colspan="3">false negatives</th></tr>'
        "<tr>" + "".join(f"<th>{kind.replace('_', ' ')}</th>" for _, kind in columns) + "</tr>"
    )
    rows = [head]
    for name in ERROR_SETTINGS:
        cells = "".join(
            f'<td class="num" data-side="{side}" data-kind="{kind}">{counts[name][(side, kind)]}</td>'
            for side, kind in columns
        )
        rows.append(f'<tr data-setting="{name}"><th>{name}</th>{cells}</tr>')
    return '<table class="errors" id="error-counts">' + "".join(rows) + "</table>"


def confusion_table(counts: Confusion, caption: str, table_id: str) -> str:
    """Rows: gold type (or none: spurious); columns: predicted type (or none: missed)."""
    gold_types = sorted({g for g, _ in counts if g is not None}, key=_type_order)
    pred_types = sorted({p for _, p in counts if p is not None}, key=_type_order)
    rows_types, cols_types = [*gold_types, None], [*pred_types, None]
    rows = [_header("gold \\ predicted", [_name(t) for t in cols_types])]
    for g in rows_types:
        cells = []
        for p in cols_types:
            n = counts.get((g, p), 0)
            css = "num diag" if g == p and g is not None else "num"
            cells.append(f'<td class="{css}">{n or ""}</td>')
        rows.append(f"<tr><th>{html.escape(_name(g))}</th>{''.join(cells)}</tr>")
    return f'<table class="confusion" id="{table_id}"><caption>{html.escape(caption)}</caption>{"".join(rows)}</table>'


def _type_order(t: str) -> tuple[int, str]:
    return (EVENT_TYPES.index(t), t) if t in EVENT_TYPES else (len(EVENT_TYPES), t)


def _name(t: str | None) -> str:
    return NONE_LABEL if t is None else t


def notes_table(notes: dict) -> str:
    """Key-value notes about the run (decode statistics, skips); lists and dicts as JSON."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_note(v))}</td></tr>" for k, v in notes.items())
    return f'<table class="notes">{rows}</table>'


def _note(value) -> str:
    return json.dumps(value, default=str) if isinstance(value, (dict, list, tuple)) else str(value)
