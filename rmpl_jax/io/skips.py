"""Everything a run left out, by reason, for the report at the end of the run.

Readers, photo checks and length checks add what they skip here instead of dropping it
silently; `train` and `predict` print `report()` when they finish, so a skipped record is
always seen once more at the end, however long the log.
"""

from __future__ import annotations

import dataclasses

from rmpl_jax.io.read_report import ReadReport

EXAMPLES_KEPT = 3  # places shown per reason; the count keeps growing past them

# Read-report counts of things a reader leaves out while mapping a source onto M2E2 (in
# strict mode too: they are the mapping, not errors), and how the report names them.
READER_DROPS = {
    "events_other_type": "events of ACE types outside the 8 M2E2 types",
    "arguments_outside_schema": "arguments whose role is outside the M2E2 schema",
    "verbs_unmapped": "images whose verb maps to no M2E2 event type",
    "roles_no_box": "roles without a box",
    "roles_unmapped": "roles that map to no M2E2 role",
    "roles_outside_image_schema": "roles outside the M2E2 image schema",
    "boxes_empty": "zero-area boxes",
}


@dataclasses.dataclass
class _Reason:
    count: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)


class SkipRegistry:
    """Counts of skipped records, examples and photos per reason (reasons in first-seen order)."""

    def __init__(self):
        self._reasons: dict[str, _Reason] = {}

    def add(self, reason: str, where: str = "", count: int = 1) -> None:
        """Notes `count` things skipped for `reason`; `where` names one of them (file, record)."""
        entry = self._reasons.setdefault(reason, _Reason())
        entry.count += count
        if where and len(entry.examples) < EXAMPLES_KEPT:
            entry.examples.append(where)

    def add_read_report(self, report: ReadReport) -> None:
        """The records a lenient read skipped (the first problems as examples), and what
        the reader left out while mapping onto M2E2 (`READER_DROPS`)."""
        if report.skipped:
            reason = f"{report.source}: bad records"
            self.add(reason, count=report.skipped)
            self._reasons[reason].examples.extend(report.problems[:EXAMPLES_KEPT])
        for key, what in READER_DROPS.items():
            if report.counts[key]:
                self.add(f"{report.source}: {what}", count=report.counts[key])

    def counts(self) -> dict[str, int]:
        """{reason: count}."""
        return {reason: entry.count for reason, entry in self._reasons.items()}

    @property
    def total(self) -> int:
        return sum(entry.count for entry in self._reasons.values())

    def report(self) -> str:
        """Multi-line summary: one line per reason with its count and first examples."""
        if not self._reasons:
            return "skipped: nothing"
        lines = [f"skipped {self.total} in all, by reason:"]
        for reason, entry in self._reasons.items():
            lines.append(f"  {entry.count:>7}  {reason}")
            lines += [f"           e.g. {where}" for where in entry.examples[:EXAMPLES_KEPT]]
        return "\n".join(lines)
