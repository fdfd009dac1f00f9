"""Fuzzing every data reader (JMEE, OneIE, imSitu, MNRE, M2E2 and its coref file) with 1,000
generated files each: whatever the bytes, a reader returns records or raises DataError naming
the file (strict and lenient), never anything else."""

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from rmpl_jax.data.imsitu import read_imsitu
from rmpl_jax.data.jmee import read_jmee
from rmpl_jax.data.m2e2 import COREF_FILE, IMAGE_FILES, TEXT_FILES, read_coref, read_m2e2
from rmpl_jax.data.mnre import read_mnre
from rmpl_jax.data.oneie import read_oneie
from rmpl_jax.io.read_report import DataError, ReadReport
from rmpl_jax.m2e2 import ontology
from tests.testing.fuzz import FUZZ, PAIR, WORD, damaged, json_text, lines_text, often, record, span

EVENT_TYPE = often(
    st.sampled_from(ontology.EVENT_TYPES), st.sampled_from(["Life:Marry", "Justice||Arrest|Jail", "Nope"])
)
ROLE = often(st.sampled_from(ontology.TEXT_ROLES["Conflict:Attack"]), st.sampled_from(["attacker", "Time-Within", ""]))
WORDS = often(st.lists(WORD, min_size=1, max_size=6), st.just([]))
ARGUMENT = st.tuples(record({"role": ROLE}), span()).map(lambda t: {**t[0], **t[1]})
EVENT = record({"event_type": EVENT_TYPE, "trigger": span(), "arguments": st.lists(ARGUMENT, max_size=2)})
JMEE = record(
    {"words": WORDS, "golden-event-mentions": st.lists(EVENT, max_size=2)},
    {
        "sentence_id": st.sampled_from(["d_1", "d_2", "x"]),
        "golden-entity-mentions": st.lists(
            st.tuples(record({"entity-type": WORD}), span()).map(lambda t: {**t[0], **t[1]}), max_size=2
        ),
        "image": st.lists(st.sampled_from(["d_0.jpg", "p.jpg"]), max_size=2),
    },
)
ONEIE = record(
    {
        "doc_id": WORD,
        "sent_id": WORD,
        "tokens": WORDS,
        "entity_mentions": st.lists(
            st.tuples(record({"id": st.sampled_from(["e1", "e2"]), "entity_type": WORD}), span()).map(
                lambda t: {**t[0], **t[1]}
            ),
            max_size=2,
        ),
        "event_mentions": st.lists(
            record(
                {
                    "event_type": EVENT_TYPE,
                    "trigger": span(),
                    "arguments": st.lists(record({"entity_id": st.sampled_from(["e1", "e3"]), "role": ROLE})),
                }
            ),
            max_size=2,
        ),
    }
)
BOX = often(
    st.lists(st.integers(0, 300), min_size=4, max_size=4).map(lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]),
    st.lists(st.integers(-5, 500) | st.floats(), min_size=4, max_size=4) | st.just([-1, -1, -1, -1]),
)
IMSITU_ITEM = record(
    {
        "verb": st.sampled_from(["arresting", "arresting", "shooting", ""]),
        "width": often(st.integers(1, 600), st.integers(-1, 0)),
        "height": often(st.integers(1, 600), st.integers(-1, 0)),
        "frames": st.lists(st.dictionaries(WORD, WORD, max_size=2), max_size=2),
        "bb": st.dictionaries(st.sampled_from(["agent", "suspect", "tool", "place", "x"]), often(BOX), max_size=3),
    }
)
MAPPING = "arresting\tagent\tJustice||Arrest|Jail\tAgent\narresting\tsuspect\tJustice||Arrest|Jail\tPerson\n"
IMAGE_NAME = st.sampled_from(["ok.jpg", "broken.jpg", "absent.jpg", "../x.jpg", ""])
POS = PAIR
MNRE_RECORD = record(
    {
        "token": WORDS,
        "h": record({"name": WORD, "pos": POS}),
        "t": record({"name": WORD, "pos": POS}),
        "img_id": IMAGE_NAME,
        "relation": often(st.sampled_from(ontology.MNRE_RELATIONS), st.sampled_from(["rel", ""])),
    }
)
MNRE_LINE = often(MNRE_RECORD.map(repr), st.text(max_size=20) | st.just("__import__('os').system('false')"))
IMAGE_EVENT = record(
    {
        "event_type": often(st.just("Conflict:Attack"), EVENT_TYPE),
        "role": st.dictionaries(
            often(st.sampled_from(["Attacker", "Target"]), st.sampled_from(["Pilot", ""])),
            st.lists(often(BOX.map(lambda box: [1, *box])), max_size=2),
            max_size=2,
        ),
    }
)
COREF_LINE = st.lists(st.sampled_from(["d_1", "d_0.jpg", "Life:Die", "", "x"]), max_size=4).map("\t".join)
GOOD_COREF = st.tuples(st.just("d_1"), st.sampled_from(["d_0.jpg", "p.jpg"]), st.just("Life:Die")).map("\t".join)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "images").mkdir()
    Image.new("RGB", (20, 10)).save(root / "images" / "ok.jpg")
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "mapping.txt").write_text(MAPPING)
    return root


def _read(reader, path, *args, **kwargs):
    """Strict and lenient reads may only return or raise DataError naming the file."""
    for lenient in (False, True):
        try:
            out = reader(path, *args, lenient=lenient, **kwargs)
            event(f"lenient={lenient}: {'some' if out[0] else 'no'} records")
        except DataError as e:
            assert str(e).startswith(str(path).rstrip("/")), str(e)
            event(f"lenient={lenient}: DataError")


@FUZZ
@given(data=damaged(json_text(often(st.lists(JMEE, max_size=3)))))
def test_jmee(place, data):
    (place / "jmee.json").write_bytes(data)
    _read(read_jmee, place / "jmee.json")


@FUZZ
@given(data=damaged(lines_text(json_text(ONEIE) | st.text(max_size=10))))
def test_oneie(place, data):
    (place / "oneie.jsonl").write_bytes(data)
    _read(read_oneie, place / "oneie.jsonl")


@FUZZ
@given(data=damaged(json_text(often(st.dictionaries(IMAGE_NAME, IMSITU_ITEM, max_size=3)))))
def test_imsitu(place, data):
    (place / "swig.json").write_bytes(data)
    mapping = ontology.load_imsitu_mapping(place / "mapping.txt")
    _read(read_imsitu, place / "swig.json", mapping, images_dir=place / "images")


@FUZZ
@given(data=damaged(lines_text(MNRE_LINE)))
def test_mnre(place, data):
    (place / "mnre.txt").write_bytes(data)
    _read(read_mnre, place / "mnre.txt", images_dir=place / "images")


M2E2_FILES = {
    **dict.fromkeys(TEXT_FILES, json_text(often(st.lists(JMEE, max_size=3)))),
    **dict.fromkeys(IMAGE_FILES, json_text(often(st.dictionaries(st.sampled_from(["d_0", "p"]), IMAGE_EVENT)))),
    COREF_FILE: lines_text(often(GOOD_COREF, COREF_LINE)),
}


@FUZZ
@given(name=st.sampled_from(sorted(M2E2_FILES)), data=st.data())
def test_m2e2_and_coref(place, name, data):
    directory = place / "m2e2"
    directory.mkdir(exist_ok=True)
    for other in M2E2_FILES:
        (directory / other).write_text("[]" if other in TEXT_FILES else "{}" if other in IMAGE_FILES else "")
    (directory / name).write_bytes(data.draw(damaged(M2E2_FILES[name])))
    for lenient in (False, True):
        try:
            corpus = read_m2e2(str(directory), str(place / "images"), lenient=lenient)
            event(f"lenient={lenient}: {corpus.report.records} records")
        except DataError as e:
            assert str(e).startswith(str(directory)), str(e)
            event(f"lenient={lenient}: DataError")


@FUZZ
@given(data=damaged(lines_text(often(GOOD_COREF, COREF_LINE))))
def test_coref(place, data):
    (place / "coref.txt").write_bytes(data)
    for lenient in (False, True):
        try:
            pairs = read_coref(str(place / "coref.txt"), ReadReport("coref", lenient=lenient))
            event(f"lenient={lenient}: {'some' if pairs else 'no'} pairs")
        except DataError as e:
            assert str(e).startswith(f"{place / 'coref.txt'}:"), str(e)
            event(f"lenient={lenient}: DataError")
