"""Prediction lines: malformed ones are errors naming the line; the CLI scores files."""

import json
import subprocess
import sys

import pytest

from rmpl_jax.m2e2.predictions import PredictionError, read_predictions
from tests.conftest import REPO_ROOT

GOOD = {
    "kind": "text",
    "sentence_id": "s",
    "events": [{"event_type": "Life:Die", "trigger": [1, 2], "arguments": [{"role": "Victim", "span": [0, 1]}]}],
}


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"kind": "audio"}', "unknown kind 'audio'"),
        ('{"kind": "text", "events": []}', "missing key 'sentence_id'"),
        (
            '{"kind": "text", "sentence_id": "s", "events": [{"event_type": "Life:Die", "trigger": [1]}]}',
            r"expected \[start, end\]",
        ),
        (
            '{"kind": "text", "sentence_id": "s", "events": [{"event_type": "Life:Die", "trigger": [1.5, 2]}]}',
            r"expected \[start, end\]",
        ),
        (
            '{"kind": "image", "image_id": "i", "events": [{"event_type": "Life:Die", '
            '"arguments": [{"role": "Victim", "box": [1, 2, 3]}]}]}',
            r"expected \[x1, y1, x2, y2\]",
        ),
        (
            '{"kind": "image", "image_id": "i", "events": [{"event_type": "Life:Die", '
            '"arguments": [{"role": "Victim", "box": [1, 2, 3, NaN]}]}]}',
            "finite numbers",
        ),
        (
            '{"kind": "coref", "sentence_id": "s", "image_id": 3, "event_type": "Life:Die"}',
            "'image_id' has the wrong type",
        ),
    ],
)
def test_malformed_line_names_line(tmp_path, bad, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad + "\n")
    with pytest.raises(PredictionError, match=rf"p\.jsonl:3\b.*{message}"):
        read_predictions(str(path))


def test_unknown_types_and_roles_are_kept(tmp_path):
    line = {
        "kind": "image",
        "image_id": "i",
        "events": [{"event_type": "Odd:Type", "arguments": [{"role": "Odd", "box": [0, 0, 1, 1]}]}],
    }
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(GOOD) + "\n")
    preds = read_predictions(str(path))
    assert preds.images[0].events[0].event_type == "Odd:Type"
    assert preds.text[0].events[0].arguments[0].role == "Victim"


def test_cli_json_and_table(m2e2_dir, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps(
            {
                "kind": "coref",
                "sentence_id": "VOA_EN_NW_2015.11.26.3074855_5",
                "image_id": "VOA_EN_NW_2015.11.26.3074855_1",
                "event_type": "Justice:Arrest-Jail",
            }
        )
        + "\n"
    )
    cmd = [
        sys.executable,
        str(REPO_ROOT / "tools" / "score_m2e2.py"),
        "--annotations",
        str(m2e2_dir),
        "--predictions",
        str(path),
    ]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert out["multimedia_event"] == {"p": 1.0, "r": 1 / 309, "f1": 2 / 310, "tp": 1, "pred": 1, "gold": 309}
    assert set(out["variants"]) == {"text_argument_head", "text_argument_no_trigger", "image_argument_inside"}
    table = subprocess.run(cmd + ["--format", "table"], check=True, capture_output=True, text=True).stdout
    assert "Justice:Arrest-Jail" in table and "multimedia_event" in table


def test_cli_reports_bad_line(m2e2_dir, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("{}\n")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "score_m2e2.py"),
            "--annotations",
            str(m2e2_dir),
            "--predictions",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "p.jsonl:1: missing key 'kind'" in result.stderr
