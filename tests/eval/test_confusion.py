"""Confusion of event types: aligned by trigger span or photo, leftovers against none."""

from rmpl_jax.eval.confusion import confusion, photo_confusion, trigger_confusion
from rmpl_jax.eval.html_tables import NONE_LABEL, confusion_table
from rmpl_jax.eval.scorer import strict_items
from tests.testing.html_page import parse_page
from tests.testing.report_cases import ARREST, ATTACK, DEMO, DIE, MEET, MOVE, small_case


def test_triggers_and_photos_of_the_small_case(tmp_path):
    items = strict_items(*small_case(tmp_path))
    assert trigger_confusion(items.text_event) == {
        (ATTACK, ATTACK): 1,
        (DIE, ATTACK): 1,
        (MEET, None): 1,
        (None, DEMO): 1,
        (MOVE, MOVE): 1,
    }
    assert photo_confusion(items.image_event) == {
        (ATTACK, ATTACK): 1,
        (MEET, DIE): 1,
        (None, DEMO): 2,  # d_p3 (no gold event) and d_p6 (only predicted)
        (ARREST, None): 1,
        (MOVE, MOVE): 1,
    }


def test_a_place_with_several_types_pairs_agreeing_types_first():
    gold = {("s", "A", 0, 1), ("s", "B", 0, 1), ("s", "C", 0, 1)}
    pred = {("s", "B", 0, 1), ("s", "D", 0, 1)}
    assert confusion(gold, pred, lambda i: (i[0], i[2], i[3])) == {("B", "B"): 1, ("A", "D"): 1, ("C", None): 1}


def test_table_rows_are_gold_and_columns_predicted():
    root = parse_page(confusion_table(confusion({("s", DIE)}, {("s", ATTACK)}, lambda i: i[:1]), "x", "t"))
    rows = [[c.text() for c in tr.children] for tr in root.find_all("tr")]
    assert rows == [
        ["gold \\ predicted", ATTACK, NONE_LABEL],
        [DIE, "1", ""],
        [NONE_LABEL, "", ""],
    ]
