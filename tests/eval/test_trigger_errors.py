"""Text-event errors per event type and by trigger word add up to the strict scorer's counts,
and the error-analysis tool prints them for a predictions file."""

import subprocess
import sys

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.errors import find_errors
from rmpl_jax.eval.scorer import score, strict_items
from rmpl_jax.eval.trigger_errors import TypeErrors, format_type_errors, trigger_words, type_errors
from rmpl_jax.m2e2.predictions import write_predictions
from tests.conftest import REPO_ROOT
from tests.testing.report_cases import ATTACK, DEMO, DIE, MEET, MOVE, perturbed_gold, small_case


def test_each_type_gets_its_errors(tmp_path):
    corpus, predictions = small_case(tmp_path)
    errors = find_errors(strict_items(corpus, predictions))
    rows = type_errors(score(corpus, predictions).settings["text_event"], errors)
    assert rows == {
        ATTACK: TypeErrors(tp=1, pred=2, gold=1, wrong_type_pred=1),  # d_2's Die trigger called Attack
        DEMO: TypeErrors(pred=1, spurious=1),
        DIE: TypeErrors(gold=1, wrong_type_gold=1),
        MEET: TypeErrors(gold=1, missed=1),
        MOVE: TypeErrors(tp=1, pred=1, gold=1),
    }
    assert trigger_words(errors, corpus.sentences, "missed") == {"w1": 1}
    assert trigger_words(errors, corpus.sentences, "spurious") == {"w3": 1}
    assert format_type_errors(rows).splitlines()[-1] == "| all | 2 | 4 | 4 | 1 | 1 | 1 | 1 |"


def test_type_errors_add_up_on_m2e2(m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    predictions = perturbed_gold(corpus)
    errors = find_errors(strict_items(corpus, predictions))
    rows = type_errors(score(corpus, predictions).settings["text_event"], errors)
    assert sum(r.missed for r in rows.values()) > 0 and sum(r.wrong_type_gold for r in rows.values()) > 0
    for name, r in rows.items():
        assert r.gold - r.tp == r.missed + r.wrong_type_gold, name
        assert r.pred - r.tp == r.spurious + r.wrong_type_pred, name


def test_tool_prints_tables_for_a_split_part(m2e2_dir, shared_data_dir, tmp_path):
    corpus = read_m2e2(str(m2e2_dir))
    path = tmp_path / "p.jsonl"
    write_predictions(str(path), perturbed_gold(corpus))
    out = subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "tools" / "error_analysis.py"), "--annotations", str(m2e2_dir),
            "--predictions", str(path), "--split", str(shared_data_dir / "splits" / "m2e2_text_docs.json"),
            "--part", "dev", "--top", "5",
        ],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    tables = out.split("\n\n")
    assert len(tables) == 3 and tables[0].startswith("| event type | tp | pred | gold |")
    assert "| missed trigger | count |" in tables[1] and "| spurious trigger | count |" in tables[2]
    assert len(tables[1].splitlines()) <= 2 + 5
