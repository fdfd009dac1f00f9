"""Hypothesis strategies for fuzzing readers: records close to a format (so the generated
inputs reach deep into the reader) with any field replaced by junk now and then, rendered
to bytes that are sometimes truncated or carry a byte that is not UTF-8."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


def often(strategy: st.SearchStrategy, rarely: st.SearchStrategy = JUNK) -> st.SearchStrategy:
    """`strategy` 19 times in 20, else `rarely` (junk by default): each of the many fields
    of a record goes wrong now and then, and whole records often come out right. (The
    choice is drawn as a number: `one_of` would pick its branches evenly.)"""
    return st.sampled_from(range(20)).flatmap(lambda i: rarely if i == 19 else strategy)


WORD = often(
    st.sampled_from(["a", "b", "the", "Über", "x y", "none", "event:", "[1,", "@2"]),
    st.sampled_from(["", " ", "\n", "a\rb"]) | st.text(max_size=4),
)
OFFSET = often(st.integers(0, 4), st.integers(-2, 9))


def record(required: dict, optional: dict | None = None) -> st.SearchStrategy:
    """A dict with these keys (each value `often` its strategy; optional ones sometimes left
    out), or now and then one with required keys missing."""
    complete = st.fixed_dictionaries(
        {k: often(v) for k, v in required.items()}, optional={k: often(v) for k, v in (optional or {}).items()}
    )
    return often(complete, st.fixed_dictionaries({}, optional={k: often(v) for k, v in required.items()}))


PAIR = often(
    st.tuples(st.integers(0, 3), st.integers(1, 2)).map(lambda t: [t[0], t[0] + t[1]]),
    st.lists(OFFSET, max_size=3),
)  # [start, end): mostly a real span of a short sentence


def span(text: bool = True) -> st.SearchStrategy:
    """`{start, end[, text]}`, mostly a real span, or a record with any of it wrong."""
    good = PAIR.filter(lambda p: len(p) == 2).map(lambda p: {"start": p[0], "end": p[1]})
    if text:
        good = st.tuples(good, st.one_of(st.just({}), WORD.map(lambda w: {"text": w}))).map(lambda t: {**t[0], **t[1]})
    return often(good, record({"start": OFFSET, "end": OFFSET}, {"text": WORD} if text else None))


@st.composite
def damaged(draw, text: st.SearchStrategy) -> bytes:
    """`text` as UTF-8, left whole most of the time, else truncated, given a bad byte, or
    replaced by random bytes."""
    data = draw(text).encode("utf-8")
    how = draw(st.sampled_from(["whole"] * 12 + ["truncate", "bad byte", "bytes"]))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if how == "bad byte":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"\xff", b"\xc3(", b"\x80", b"\xed\xa0\x80"])) + data[at:]
    if how == "bytes":
        return draw(st.binary(max_size=40))
    return data


def json_text(value: st.SearchStrategy) -> st.SearchStrategy:
    return value.map(json.dumps)


def lines_text(line: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(line, max_size=4).map(lambda lines: "\n".join(lines) + "\n")
