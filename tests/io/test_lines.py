"""Line and JSON readers: non-UTF-8 bytes, truncation, CRLF and empty sentences are named
by file and line."""

import pytest

from rmpl_jax.io.lines import numbered_lines
from rmpl_jax.io.read_report import DataError, ReadReport, load_json, require_words


def test_lines_skip_blanks_and_read_crlf(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"one\r\n\r\n  \ntwo\nthree")
    assert list(numbered_lines(path)) == [(1, "one"), (4, "two"), (5, "three")]


def test_non_utf8_line_is_named_or_handed_over(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"good\nbad \xff here\nalso good\n")
    with pytest.raises(DataError, match=r"a\.jsonl:2: not UTF-8 text \(byte 0xff at column 5\)"):
        list(numbered_lines(path))
    report = ReadReport("a", lenient=True)
    assert list(numbered_lines(path, on_error=report.skip)) == [(1, "good"), (3, "also good")]
    assert report.skipped == 1 and "a.jsonl:2" in report.problems[0]
    with pytest.raises(DataError, match=":2:"):
        list(numbered_lines(path, on_error=ReadReport("a").skip))  # strict reports raise again


def test_load_json_names_bad_bytes_and_truncation(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'[\n{"a": 1},\n{"b": "\xc3("}\n]')
    with pytest.raises(DataError, match=r"a\.json:3: not UTF-8 text"):
        load_json(str(path))
    path.write_text('[{"a": 1}, {"b"')
    with pytest.raises(DataError, match=r"a\.json: invalid JSON at line 1"):
        load_json(str(path))
    path.write_text("[" * 100_000)
    with pytest.raises(DataError, match="a.json"):
        load_json(str(path))


def test_empty_sentence_is_an_error():
    with pytest.raises(DataError, match="f: record 3: key 'words' is empty"):
        require_words({"words": []}, "words", "f: record 3")
