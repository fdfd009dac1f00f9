"""Merging the multimedia task's answers: coref records from the answered pairs, text events
added when new, a photo's first event replaced only when it disagrees with every answer."""

from rmpl_jax.infer.multimedia import merge_answers
from rmpl_jax.m2e2.records import Box, BoxArgument, CorefPair, ImageEvent, Span, TextEvent

ATTACK = TextEvent("Conflict:Attack", Span(1, 2, "fired"))
MEET = TextEvent("Contact:Meet", Span(4, 5, "met"))
BOX = (BoxArgument("Attacker", Box(1, 2, 3, 4)),)


def test_merge_rules():
    answers = {
        ("S1", "P1"): (TextEvent("Conflict:Attack", Span(1, 2, "fired"), ()), ImageEvent("Conflict:Attack", BOX)),
        ("S1", "P2"): (),
        ("S2", "P2"): (MEET, ImageEvent("Contact:Meet", BOX)),
        ("S2", "P3"): (MEET, ImageEvent("Contact:Meet")),
        ("S3", "P1"): (TextEvent("Life:Die", Span(0, 1)), ImageEvent("Life:Die")),
    }
    text = {"S1": [ATTACK], "S2": [], "S3": []}
    images = {"P1": [ImageEvent("Conflict:Attack")], "P2": [ImageEvent("Life:Die")], "P3": []}
    new_text, new_images, coref = merge_answers(answers, text, images)
    assert coref == [
        CorefPair("S1", "P1", "Conflict:Attack"),
        CorefPair("S2", "P2", "Contact:Meet"),
        CorefPair("S2", "P3", "Contact:Meet"),
        CorefPair("S3", "P1", "Life:Die"),
    ]
    assert new_text == {"S1": [ATTACK], "S2": [MEET], "S3": [TextEvent("Life:Die", Span(0, 1))]}
    # agrees: its own event and boxes stay first; another answered type follows
    assert new_images["P1"] == [ImageEvent("Conflict:Attack"), ImageEvent("Life:Die")]
    assert new_images["P2"] == [ImageEvent("Contact:Meet", BOX), ImageEvent("Life:Die")]  # disagrees: the answer first
    assert new_images["P3"] == [ImageEvent("Contact:Meet")]  # no event of its own
    assert text == {"S1": [ATTACK], "S2": [], "S3": []} and images["P3"] == []  # inputs unchanged
