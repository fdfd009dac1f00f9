"""The ontology and the imSitu mapping file."""

import pytest

from rmpl_jax.m2e2 import ontology


def test_eight_types_with_roles():
    assert len(ontology.EVENT_TYPES) == 8
    assert set(ontology.TEXT_ROLES) == set(ontology.IMAGE_ROLES) == set(ontology.EVENT_TYPES)
    assert ontology.IMAGE_ROLES["Conflict:Demonstrate"] == ("Entity", "Police", "Instrument", "Place")
    assert len(ontology.ACE_SUBTYPES) == 33 == len(set(ontology.ACE_SUBTYPES))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Justice||Arrest|Jail", "Justice:Arrest-Jail"),
        ("Transaction||Transfer|MONEY", "Transaction:Transfer-Money"),
        ("movement:transport", "Movement:Transport"),
        ("Justice:Sentence", None),
        ("Personnel:End-Position", None),
    ],
)
def test_ace_to_m2e2(name, expected):
    assert ontology.ace_to_m2e2(name) == expected


def test_unknown_ace_type_raises():
    with pytest.raises(ValueError, match="Sports:Goal"):
        ontology.ace_to_m2e2("Sports:Goal")


def test_roles_in_m2e2_gold_are_in_the_schema(m2e2_dir):
    from rmpl_jax.data.m2e2 import read_m2e2

    corpus = read_m2e2(str(m2e2_dir))
    for s in corpus.sentences.values():
        for e in s.events:
            assert all(ontology.is_text_role(e.event_type, a.role) for a in e.arguments), s.sentence_id
    for i in corpus.annotated_images().values():
        e = i.events[0]
        assert all(ontology.is_image_role(e.event_type, a.role) for a in e.arguments), i.image_id


def test_imsitu_mapping(shared_data_dir):
    mapping = ontology.load_imsitu_mapping(shared_data_dir / "imsitu" / "ace_sr_mapping.txt")
    assert len(mapping.roles) == 227 and len(mapping.verb_types) == 67
    assert mapping.event_type("arresting") == "Justice:Arrest-Jail"
    assert mapping.role("arresting", "agent") == "Agent"
    assert mapping.event_type("buying") == "Transaction:Transfer-Money"  # 'MONEY' spelling too
    assert mapping.event_type("adjusting") is None and mapping.role("arresting", "nose") is None
    assert set(mapping.verb_types.values()) <= set(ontology.EVENT_TYPES)


@pytest.mark.parametrize(
    "line, message",
    [
        ("arresting\tagent\tJustice||Arrest|Jail\n", "expected 4 tab-separated fields"),
        ("arresting\tagent\tSports||Goal\tAgent\n", "unknown ACE event subtype"),
        ("sentencing\tjudge\tJustice||Sentence\tAdjudicator\n", "not one of the 8 M2E2 types"),
    ],
)
def test_bad_mapping_line_names_it(tmp_path, line, message):
    path = tmp_path / "map.txt"
    path.write_text("arresting\tagent\tJustice||Arrest|Jail\tAgent\n" + line)
    with pytest.raises(ValueError, match=rf"map\.txt:2: .*{message}"):
        ontology.load_imsitu_mapping(path)
