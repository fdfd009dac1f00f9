"""Line-oriented input files (JSONL, TSV, Python-literal lines)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from rmpl_jax.io.paths import as_path
from rmpl_jax.io.read_report import DataError


def numbered_lines(
    path: str | os.PathLike, on_error: Callable[[DataError], None] | None = None
) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every non-blank line, so that
    errors can name `path:lineno`.

    A line that is not UTF-8 raises DataError naming the file and line; with `on_error`
    (e.g. `ReadReport.skip`, which raises again in strict mode) it is handed over and skipped.
    """
    with as_path(path).open("rb") as f:  # a local path or a URL (gs://...)
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                error = DataError(f"{path}:{lineno}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})")
                if on_error is None:
                    raise error from None
                on_error(error)
                continue
            if line.strip():
                line = line.removesuffix("\n")
                yield lineno, line.removesuffix("\r")  # \r\n endings read as \n
