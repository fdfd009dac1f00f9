"""Reader for MNRE (multimodal relation extraction on tweets with photos).

One Python dict literal per line (single-quoted, so not JSON; read with
`ast.literal_eval`, never `eval`): `token` (list of words), `h{name, pos}` and
`t{name, pos}` (head and tail entity, pos = [start, end) token offsets), `img_id`
(photo file name) and `relation` (one of `MNRE_RELATIONS`, 'None' for no relation).
Images are optional: when `images_dir` holds `img_id` the record carries its path.

Report counts: `images_missing` (no images_dir, or no such file there), `name_mismatch`
(an entity `name` that differs from its tokens beyond whitespace; the tokens win).
"""

from __future__ import annotations

import ast
import os

from rmpl_jax.io.lines import numbered_lines
from rmpl_jax.io.paths import file_lookup
from rmpl_jax.io.read_report import (
    DataError,
    ReadReport,
    require,
    require_span,
    require_words,
)
from rmpl_jax.m2e2.ontology import MNRE_RELATIONS
from rmpl_jax.m2e2.records import MNRERecord, Span

_RELATIONS = frozenset(MNRE_RELATIONS)


def read_mnre(
    path: str | os.PathLike, *, images_dir: str | os.PathLike | None = None, lenient: bool = False
) -> tuple[list[MNRERecord], ReadReport]:
    """Reads one MNRE split file. Record ids are `<file stem>:<line number>`.

    Raises DataError naming file, line and key on bad input; `lenient=True` skips the
    bad line and notes it in the returned report.
    """
    path = os.fspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    report = ReadReport(source=path, lenient=lenient)
    records = []
    find = None if images_dir is None else file_lookup(images_dir)
    for lineno, line in numbered_lines(path, on_error=report.skip):
        where = f"{path}:{lineno}"
        try:
            records.append(_record(line, f"{stem}:{lineno}", find, where, report))
        except DataError as e:
            report.skip(e)
    report.records = len(records)
    return records, report


def _record(line, record_id, find, where, report) -> MNRERecord:
    try:
        obj = ast.literal_eval(line.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise DataError(f"{where}: not a Python literal ({type(e).__name__}: {e})") from None
    tokens = require_words(obj, "token", where)
    head = _entity(require(obj, "h", dict, where), tokens, f"{where} key 'h'", report)
    tail = _entity(require(obj, "t", dict, where), tokens, f"{where} key 't'", report)
    relation = require(obj, "relation", str, where)
    if relation not in _RELATIONS:
        raise DataError(f"{where}: key 'relation' {relation!r} is not an MNRE relation")
    img_id = require(obj, "img_id", str, where)
    image = None if find is None else find(img_id)
    if image is None:
        report.counts["images_missing"] += 1
    return MNRERecord(record_id, tokens, head, tail, relation, img_id, image)


def _entity(obj, tokens, where, report) -> Span:
    name = require(obj, "name", str, where)
    pos = require(obj, "pos", list, where)
    if len(pos) != 2:
        raise DataError(f"{where}: key 'pos' must be [start, end], got {pos!r}")
    start, end = require_span({"start": pos[0], "end": pos[1]}, len(tokens), f"{where} 'pos'")
    if "".join(name.split()) != "".join(tokens[start:end]):
        report.counts["name_mismatch"] += 1
    return Span(start, end, " ".join(tokens[start:end]))
