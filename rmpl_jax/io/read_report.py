"""What a source reader saw: records kept, records skipped, and named drop counts.

Readers raise `DataError` (file + record/line + key in the message) on bad input. In
lenient mode they catch it per record, skip that record and note it here instead, so a
bad record is never dropped silently. Drops that are part of the mapping into M2E2
(an ACE subtype outside the 8, a role outside the schema) are counted in both modes.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from typing import Any

from rmpl_jax.io.errors import UserError
from rmpl_jax.io.paths import read_bytes

MAX_PROBLEMS = 100  # messages kept verbatim; the count keeps growing past it


class DataError(UserError, ValueError):
    """Bad input; the message starts with where it is (file, record or line, key)."""


@dataclasses.dataclass
class ReadReport:
    """Tally of one read. `counts` keys are documented by each reader."""

    source: str
    lenient: bool = False
    records: int = 0
    skipped: int = 0
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list[str] = dataclasses.field(default_factory=list)

    def skip(self, error: DataError) -> None:
        """Notes a skipped record (lenient mode) or re-raises it (strict mode)."""
        if not self.lenient:
            raise error
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(str(error))

    def summary(self) -> str:
        """One line for logs."""
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"{self.source}: {self.records} records, {self.skipped} skipped" + (f"; {extra}" if extra else "")


def load_json(path: str) -> Any:
    """Parses a JSON file; a truncated, invalid or non-UTF-8 file raises DataError naming it
    and the line."""
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to read") from None


def require(obj: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    """`obj[key]` checked to be a dict entry of the given type(s), else DataError."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise DataError(f"{where}: missing key {key!r}")
    value = obj[key]
    # bool is an int subclass; an offset of `true` is a bug, not 1.
    if isinstance(value, bool) and bool not in _as_tuple(types):
        raise DataError(f"{where}: key {key!r} must be {_names(types)}, got bool")
    if not isinstance(value, types):
        raise DataError(f"{where}: key {key!r} must be {_names(types)}, got {type(value).__name__}")
    return value


def require_span(obj: Any, n_words: int, where: str, start_key: str = "start", end_key: str = "end") -> tuple[int, int]:
    """Token offsets [start, end) that must lie inside a sentence of n_words."""
    start = require(obj, start_key, int, where)
    end = require(obj, end_key, int, where)
    if not 0 <= start < end <= n_words:
        raise DataError(
            f"{where}: span [{start}, {end}) ({start_key!r}/{end_key!r}) "
            f"is empty or outside the sentence of {n_words} tokens"
        )
    return start, end


def require_words(obj: Any, key: str, where: str) -> tuple[str, ...]:
    """A non-empty list of tokens: strings, not blank, without line breaks (the task grammar
    is line based)."""
    words = require(obj, key, list, where)
    if not words:
        raise DataError(f"{where}: key {key!r} is empty; a sentence needs at least one token")
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w.strip() or "\n" in w or "\r" in w:
            raise DataError(
                f"{where}: key {key!r} token {i} is {w!r}; tokens must be non-blank strings without line breaks"
            )
    return tuple(words)


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _names(types) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(types))
