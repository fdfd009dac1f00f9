"""Plain-text tables of a ScoreReport: overall settings, variants, per event type."""

from __future__ import annotations

from rmpl_jax.eval.scorer import ScoreReport, prf
from rmpl_jax.m2e2.ontology import EVENT_TYPES


def _row(name: str, s: dict, width: int) -> str:
    return (
        f"{name:<{width}} {100 * s['p']:6.1f} {100 * s['r']:6.1f} {100 * s['f1']:6.1f} "
        f"{s['tp']:6d} {s['pred']:6d} {s['gold']:6d}"
    )


def format_table(report: ScoreReport) -> str:
    """Overall P/R/F1 (percent) with counts, then F1 per event type and setting."""
    width = 26
    header = f"{'setting':<{width}} {'P':>6} {'R':>6} {'F1':>6} {'tp':>6} {'pred':>6} {'gold':>6}"
    lines = [header, "-" * len(header)]
    for name, c in report.settings.items():
        lines.append(_row(name, prf(c.tp, c.pred, c.gold), width))
    lines.append("variants")
    for name, c in report.variants.items():
        lines.append(_row("  " + name, prf(c.tp, c.pred, c.gold), width))

    by_type = report.by_type()
    names = list(report.settings)
    types = list(EVENT_TYPES)
    types += sorted({t for rows in by_type.values() for t in rows} - set(EVENT_TYPES))
    short = [n.replace("multimedia", "mm").replace("argument", "arg") for n in names]
    lines += [
        "",
        "F1 by event type (gold count in brackets)",
        f"{'event type':<{width}} " + " ".join(f"{s:>16}" for s in short),
    ]
    for t in types:
        cells = []
        for name in names:
            s = by_type[name].get(t)
            cells.append(f"{100 * s['f1']:8.1f} ({s['gold']:4d})" if s else f"{'-':>16}")
        lines.append(f"{t:<{width}} " + " ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)
