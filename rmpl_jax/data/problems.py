"""Bad-input handling shared by the readers: strict mode raises, lenient mode counts."""

from __future__ import annotations

import collections
import dataclasses


class DataError(ValueError):
    """A bad input record; the message names the file and the record."""


@dataclasses.dataclass
class SkipReport:
    """Counts of records a lenient reader skipped, by reason, with a few examples."""

    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line per reason: `N skipped: reason (e.g. where, ...)`."""
        if not self.counts:
            return "nothing skipped"
        return "\n".join(f"{n} skipped: {reason} (e.g. {', '.join(self.examples[reason])})"
                         for reason, n in self.counts.most_common())


class Problems:
    """Raises `DataError` (strict) or records a skip (lenient) for one bad record."""

    def __init__(self, lenient: bool = False, report: SkipReport | None = None):
        self.lenient = lenient
        self.report = report if report is not None else SkipReport()

    def bad(self, reason: str, where: str) -> None:
        """Reports a bad record; returns only in lenient mode (the caller then skips it)."""
        if not self.lenient:
            raise DataError(f"{where}: {reason}")
        self.report.add(reason, where)
