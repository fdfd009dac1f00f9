"""The end-of-run skip report: counts by reason, first places, lenient read reports."""

from rmpl_jax.io.read_report import DataError, ReadReport
from rmpl_jax.io.skips import SkipRegistry


def test_report_counts_by_reason():
    skips = SkipRegistry()
    assert skips.report() == "skipped: nothing" and skips.total == 0
    for i in range(5):
        skips.add("text_ee: longer than the largest bucket (512 tokens)", f"s{i} ({600 + i} tokens)")
    skips.add("swig.json: unreadable photo", "x.jpg: truncated")
    skips.add("photo missing", "p1", count=40)
    report = ReadReport("ace.json", lenient=True)
    report.skip(DataError("ace.json: record 7: missing key 'words'"))
    report.counts.update(events_other_type=3, text_mismatch=2)  # a mapping drop, and a fix that drops nothing
    skips.add_read_report(report)
    skips.add_read_report(ReadReport("clean.json", lenient=True))  # nothing skipped: no line
    assert skips.counts() == {
        "text_ee: longer than the largest bucket (512 tokens)": 5,
        "swig.json: unreadable photo": 1,
        "photo missing": 40,
        "ace.json: bad records": 1,
        "ace.json: events of ACE types outside the 8 M2E2 types": 3,
    }
    text = skips.report()
    assert text.splitlines()[0] == "skipped 50 in all, by reason:"
    assert "      5  text_ee: longer than the largest bucket (512 tokens)" in text
    assert "e.g. s2 (602 tokens)" in text and "e.g. s3" not in text  # three places per reason
    assert "e.g. ace.json: record 7: missing key 'words'" in text and "clean.json" not in text
