"""Line-oriented input files (JSONL, TSV, Python-literal lines)."""

from __future__ import annotations

import os
from collections.abc import Iterator


def numbered_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every non-blank line, so that
    errors can name `path:lineno`."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line.rstrip("\n")
