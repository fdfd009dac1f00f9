"""Examples beyond the largest bucket: an error naming the task and the longest example, or
skipped and counted."""

import pytest

from rmpl_jax.data.lengths import drop_too_long
from rmpl_jax.io.read_report import DataError
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2.grammar import Context, Example


def _examples(n):
    return [Example("text_ee", f"s{i}", "p", "t", Context("text_ee")) for i in range(n)]


def test_strict_names_the_longest():
    with pytest.raises(
        DataError, match=r"task text_ee: 2 of 4 examples .* bucket \(10 tokens\), the longest s3 with 30"
    ):
        drop_too_long("text_ee", _examples(4), [5, 11, 10, 30], 10, lenient=False, skips=SkipRegistry())


def test_lenient_skips_and_counts():
    skips = SkipRegistry()
    kept = drop_too_long("text_ee", _examples(4), [5, 11, 10, 30], 10, lenient=True, skips=skips)
    assert [ex.item_id for ex in kept] == ["s0", "s2"]
    assert skips.counts() == {"text_ee: longer than the largest bucket (10 tokens)": 2}
    assert "e.g. s1 (11 tokens)" in skips.report()
