"""A seeded synthetic multimedia corpus shaped like M2E2, for tests and smoke training.

Documents hold templated news-like sentences (all 8 event types with arguments of the
schema roles; some sentences with no event, some with two) and PIL-drawn photos with
one event each or none: a background colour per event type and one figure per role
argument, drawn to fill exactly the box recorded for it. A sentence and a photo of the
same document that share an event type form a cross-media pair. Records are the M2E2
ones (Sentence, ImageItem with the PNG's path, CorefPair), so the scorer scores them;
`write_m2e2_format` also writes M2E2's file layout for the M2E2 reader.

Everything is a function of (seed, split name): same inputs, same records and PNG bytes.
Splits draw from independent random streams and their ids never collide.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random

from PIL import Image, ImageDraw

from rmpl_jax.io.read_report import ReadReport
from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    CorefPair,
    EntityMention,
    ImageEvent,
    ImageItem,
    Sentence,
    Span,
    TextArgument,
    TextEvent,
)

# name pools; the second field is the entity type written on EntityMentions
POOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PER": (
        "PER",
        (
            "John Smith",
            "Maria Lopez",
            "Ahmed Karim",
            "Li Wei",
            "Anna Petrova",
            "the president",
            "the minister",
            "a spokesman",
            "Omar Haddad",
            "the governor",
            "Grace Mwangi",
            "the senator",
        ),
    ),
    "GROUP": (
        "PER",
        (
            "the protesters",
            "students",
            "farmers",
            "the soldiers",
            "workers",
            "opposition supporters",
            "three civilians",
            "the villagers",
            "two journalists",
            "the refugees",
        ),
    ),
    "ARMED": ("ORG", ("the rebels", "the army", "militants", "government forces", "the insurgents", "an armed group")),
    "ORG": (
        "ORG",
        (
            "the United Nations",
            "the World Bank",
            "the Red Cross",
            "the government",
            "the company",
            "the European Union",
            "the charity",
        ),
    ),
    "POLICE": ("ORG", ("police", "riot police", "security forces", "the authorities")),
    "GPE": (
        "GPE",
        (
            "Kabul",
            "Paris",
            "Lagos",
            "Caracas",
            "Brussels",
            "northern Syria",
            "the capital",
            "Nairobi",
            "Manila",
            "the province",
        ),
    ),
    "FAC": (
        "FAC",
        (
            "the embassy",
            "the airport",
            "the main square",
            "a checkpoint",
            "the courthouse",
            "city hall",
            "the border crossing",
            "a market",
        ),
    ),
    "WEA": ("WEA", ("a car bomb", "rockets", "rifles", "a knife", "artillery", "grenades", "missiles")),
    "VEH": ("VEH", ("a truck", "buses", "a plane", "boats", "a helicopter", "trains")),
    "MONEY": ("VALUE", ("$ 5 million", "200,000 euros", "$ 3 billion", "$ 40,000", "10 million dollars")),
    "CRIME": ("VALUE", ("fraud", "murder", "drug trafficking", "corruption", "theft")),
    "GOODS": (
        "PER",
        ("food aid", "medical supplies", "the prisoners", "troops", "the refugees", "weapons", "the wounded"),
    ),
}

# `*word*` is the trigger; `{Role/POOL}` a role slot. Same role twice: two arguments.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "Conflict:Attack": (
        "{Attacker/ARMED} *attacked* {Target/FAC} in {Place/GPE} on Monday .",
        "{Attacker/ARMED} *fired* {Instrument/WEA} at {Target/GROUP} near {Place/GPE} .",
        "{Target/FAC} was *bombed* by {Attacker/ARMED} .",
        "{Attacker/ARMED} *shelled* {Place/GPE} with {Instrument/WEA} overnight .",
        "An *ambush* on {Target/GROUP} in {Place/GPE} was blamed on {Attacker/ARMED} .",
    ),
    "Conflict:Demonstrate": (
        "Thousands of {Entity/GROUP} *protested* in {Place/GPE} on Sunday .",
        "{Police/POLICE} dispersed a *rally* by {Entity/GROUP} in {Place/FAC} .",
        "{Entity/GROUP} *marched* through {Place/GPE} demanding reforms .",
        "{Entity/GROUP} staged a *demonstration* outside {Place/FAC} as {Police/POLICE} watched .",
    ),
    "Contact:Meet": (
        "{Entity/PER} *met* {Entity/PER} in {Place/GPE} on Tuesday .",
        "{Entity/PER} and {Entity/PER} held *talks* in {Place/GPE} .",
        "The *summit* between {Entity/PER} and {Entity/ORG} opened in {Place/GPE} .",
        "{Entity/PER} will *meet* {Entity/GROUP} at {Place/FAC} next week .",
    ),
    "Contact:Phone-Write": (
        "{Entity/PER} *called* {Entity/PER} on Wednesday .",
        "{Entity/PER} *wrote* to {Entity/ORG} from {Place/GPE} .",
        "In a *letter* , {Entity/PER} urged {Entity/PER} to act .",
        "{Entity/PER} said in a phone *call* with {Entity/PER} that work would continue .",
    ),
    "Justice:Arrest-Jail": (
        "{Agent/POLICE} *arrested* {Person/PER} in {Place/GPE} on suspicion of {Crime/CRIME} .",
        "{Person/PER} was *detained* by {Agent/POLICE} at {Place/FAC} .",
        "A court *jailed* {Person/PER} for {Crime/CRIME} .",
        "{Person/GROUP} remain in *custody* in {Place/GPE} .",
    ),
    "Life:Die": (
        "{Victim/GROUP} were *killed* in {Place/GPE} by {Instrument/WEA} .",
        "{Agent/ARMED} *killed* {Victim/GROUP} with {Instrument/WEA} .",
        "{Victim/PER} *died* in {Place/GPE} on Friday .",
        "The *deaths* of {Victim/GROUP} in {Place/GPE} shocked the country .",
    ),
    "Movement:Transport": (
        "{Agent/ORG} *sent* {Artifact/GOODS} to {Destination/GPE} by {Vehicle/VEH} .",
        "{Artifact/GOODS} *arrived* in {Destination/GPE} from {Origin/GPE} .",
        "{Agent/ORG} *moved* {Artifact/GOODS} from {Origin/GPE} to {Destination/GPE} aboard {Vehicle/VEH} .",
        "{Agent/ORG} *shipped* {Artifact/GOODS} to {Destination/FAC} for {Price/MONEY} .",
    ),
    "Transaction:Transfer-Money": (
        "{Giver/ORG} *donated* {Money/MONEY} to {Recipient/ORG} .",
        "{Giver/PER} *paid* {Recipient/PER} {Money/MONEY} in {Place/GPE} .",
        "{Recipient/ORG} *received* {Money/MONEY} from {Giver/ORG} for {Beneficiary/GROUP} .",
        "{Giver/ORG} *gave* {Money/MONEY} to {Recipient/ORG} to help {Beneficiary/GROUP} .",
    ),
}

NO_EVENT_TEMPLATES: tuple[str, ...] = (
    "{PER/PER} said the economy would grow next year .",
    "The weather in {GPE/GPE} was mild on Thursday .",
    "{ORG/ORG} published its annual report .",
    "Officials in {GPE/GPE} declined to comment .",
    "Prices at {FAC/FAC} rose slightly in March .",
)

# image appearance: background per type, (shape, colour) per role
TYPE_COLOURS = dict(
    zip(
        ontology.EVENT_TYPES,
        (
            (200, 90, 80),
            (220, 200, 90),
            (110, 170, 220),
            (160, 120, 200),
            (90, 90, 140),
            (60, 60, 60),
            (110, 190, 120),
            (230, 160, 60),
        ),
    )
)
NO_EVENT_COLOUR = (175, 175, 175)
ROLE_LOOKS = {
    "Attacker": ("figure", (150, 0, 0)),
    "Target": ("block", (250, 250, 250)),
    "Instrument": ("triangle", (30, 30, 30)),
    "Entity": ("figure", (0, 90, 200)),
    "Police": ("figure", (0, 0, 90)),
    "Place": ("frame", (120, 100, 70)),
    "Agent": ("figure", (0, 120, 60)),
    "Person": ("figure", (240, 140, 0)),
    "Victim": ("figure", (120, 0, 120)),
    "Artifact": ("ellipse", (160, 80, 20)),
    "Vehicle": ("vehicle", (20, 20, 160)),
    "Giver": ("figure", (0, 150, 150)),
    "Recipient": ("figure", (200, 0, 150)),
    "Money": ("ellipse", (20, 160, 20)),
}


@dataclasses.dataclass(frozen=True)
class SyntheticSplit:
    """One split. image_sizes: image_id -> (width, height)."""

    name: str
    sentences: tuple[Sentence, ...]
    images: tuple[ImageItem, ...]
    pairs: tuple[CorefPair, ...]
    image_sizes: dict[str, tuple[int, int]]

    def as_corpus(self) -> M2E2Corpus:
        """The split as a scorer's gold corpus."""
        return M2E2Corpus(
            sentences={s.sentence_id: s for s in self.sentences},
            images={i.image_id: i for i in self.images},
            coref=self.pairs,
            missing_images=(),
            report=ReadReport(self.name),
        )


# ---------------------------------------------------------------- text


def _fill(template: str, rng: random.Random, used: set[str]):
    """Template -> (words, trigger index or None, [(role, start, end, entity type)])."""
    words, slots, trigger = [], [], None
    for piece in template.split():
        if piece.startswith("{"):
            role, pool = piece[1:-1].split("/")
            etype, names = POOLS[pool]
            fresh = [n for n in names if n not in used] or list(names)
            name = rng.choice(fresh)
            used.add(name)
            start = len(words)
            words.extend(name.split())
            slots.append((role, start, len(words), etype))
        elif piece.startswith("*"):
            trigger = len(words)
            words.append(piece.strip("*"))
        else:
            words.append(piece)
    return words, trigger, slots


def _clause(event_type, rng, offset):
    """One event clause: (words without the final '.', TextEvent, entity mentions)."""
    template = rng.choice(TEMPLATES[event_type])
    words, trig, slots = _fill(template, rng, set())
    words = words[:-1]
    if offset and not template.startswith("{"):  # "..., after the summit ..."
        words[0] = words[0].lower()

    def shift(s, e):
        return Span(s + offset, e + offset)

    args = tuple(TextArgument(role, shift(s, e)) for role, s, e, _ in slots)
    entities = [EntityMention(t, shift(s, e)) for _, s, e, t in slots]
    return words, TextEvent(event_type, shift(trig, trig + 1), args), entities


def _with_text(sentence_words, events, entities):
    def fix(span):
        return Span(span.start, span.end, " ".join(sentence_words[span.start : span.end]))

    events = tuple(
        TextEvent(e.event_type, fix(e.trigger), tuple(TextArgument(a.role, fix(a.span)) for a in e.arguments))
        for e in events
    )
    return events, tuple(EntityMention(m.entity_type, fix(m.span)) for m in entities)


def _sentence(sentence_id, doc_id, event_types, images, rng) -> Sentence:
    if not event_types:
        words, _, slots = _fill(rng.choice(NO_EVENT_TEMPLATES), rng, set())
        entities = [EntityMention(t, Span(s, e)) for _, s, e, t in slots]
        events = []
    else:
        words, events, entities = [], [], []
        for i, t in enumerate(event_types):
            if i:
                words += [",", "after"]
            clause, event, ents = _clause(t, rng, len(words))
            words += clause
            events.append(event)
            entities += ents
        words.append(".")
    words[0] = words[0][:1].upper() + words[0][1:]
    events, entities = _with_text(words, events, entities)
    return Sentence(sentence_id, tuple(words), events, entities, doc_id, tuple(images))


# ---------------------------------------------------------------- images


def _draw_role(draw: ImageDraw.ImageDraw, shape: str, colour, box) -> None:
    x1, y1, x2, y2 = box
    if shape == "figure":  # head and body fill the box
        head = (y2 - y1) * 0.3
        cx = (x1 + x2) / 2
        r = min(head / 2, (x2 - x1) / 2)
        draw.ellipse((cx - r, y1, cx + r, y1 + 2 * r), fill=colour)
        draw.rectangle((x1, y1 + 2 * r, x2, y2), fill=colour)
    elif shape == "triangle":
        draw.polygon([(x1, y2), ((x1 + x2) / 2, y1), (x2, y2)], fill=colour)
    elif shape == "ellipse":
        draw.ellipse((x1, y1, x2, y2), fill=colour)
    elif shape == "vehicle":
        body = y1 + (y2 - y1) * 0.7
        draw.rectangle((x1, y1, x2, body), fill=colour)
        rr = min(y2 - body, (x2 - x1) / 5)  # wheels stay inside the box, off its centre
        draw.ellipse((x1, y2 - 2 * rr, x1 + 2 * rr, y2), fill=(0, 0, 0))
        draw.ellipse((x2 - 2 * rr, y2 - 2 * rr, x2, y2), fill=(0, 0, 0))
    elif shape == "block":
        draw.rectangle((x1, y1, x2, y2), fill=colour)
    else:  # frame: an outlined region (a place, not a thing)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=3)


def _random_box(rng, w, h, lo=0.15, hi=0.5):
    bw = int(w * rng.uniform(lo, hi))
    bh = int(h * rng.uniform(lo, hi))
    x1 = rng.randrange(0, w - bw)
    y1 = rng.randrange(0, h - bh)
    return (x1, y1, x1 + bw, y1 + bh)


def _image(image_id, event_type, image_dir, rng):
    """Draws and saves one PNG; returns (ImageItem, (width, height))."""
    w, h = rng.randint(*_SIDES), rng.randint(*_SIDES)
    img = Image.new("RGB", (w, h), TYPE_COLOURS[event_type] if event_type else NO_EVENT_COLOUR)
    draw = ImageDraw.Draw(img)
    events = ()
    if event_type is None:
        for _ in range(rng.randint(0, 3)):  # distractors, not roles
            draw.rectangle(_random_box(rng, w, h, 0.1, 0.3), fill=(rng.randrange(256),) * 3)
    else:
        roles = list(ontology.IMAGE_ROLES[event_type])
        chosen = rng.sample(roles, rng.randint(1, len(roles)))
        chosen.sort(key=roles.index)
        if "Place" in chosen:  # drawn first: it is the background region
            chosen.remove("Place")
            chosen.insert(0, "Place")
        args = []
        for role in chosen:
            for _ in range(2 if role == "Entity" and rng.random() < 0.5 else 1):
                box = _random_box(rng, w, h, 0.5, 0.9) if role == "Place" else _random_box(rng, w, h)
                shape, colour = ROLE_LOOKS[role]
                _draw_role(draw, shape, colour, box)
                args.append(BoxArgument(role, Box(*(float(v) for v in box))))
        events = (ImageEvent(event_type, tuple(args)),)
    path = os.path.join(image_dir, f"{image_id}.png")
    img.save(path, format="PNG", compress_level=1)
    return ImageItem(image_id, events, path), (w, h)


_SIDES = (224, 448)


# ---------------------------------------------------------------- corpus


def generate_split(
    name: str,
    n_docs: int,
    image_dir: str | os.PathLike,
    *,
    seed: int = 0,
    sentences_per_doc: tuple[int, int] = (3, 8),
    images_per_doc: tuple[int, int] = (0, 2),
    p_no_event: float = 0.3,
    p_two_events: float = 0.15,
    p_image_event: float = 0.8,
) -> SyntheticSplit:
    """One split of `n_docs` documents; PNGs are written to `image_dir` (created).

    Each document has a main event type; its sentences report that type (or another
    type, or none, or two events) and its photos show that type with probability
    `p_image_event`, else no event.
    """
    if not name.replace("-", "").isalnum():
        raise ValueError(f"split name {name!r} must be alphanumeric (it prefixes ids)")
    image_dir = os.fspath(image_dir)
    os.makedirs(image_dir, exist_ok=True)
    rng = random.Random(f"rmpl-synthetic:{seed}:{name}")
    sentences, images, pairs, sizes = [], [], [], {}
    for d in range(n_docs):
        doc_id = f"SYN_{name}_{d:05d}"
        main = rng.choice(ontology.EVENT_TYPES)
        n_img = rng.randint(*images_per_doc)
        doc_images = []
        for k in range(n_img):
            shown = main if rng.random() < p_image_event else None
            item, size = _image(f"{doc_id}_{k}", shown, image_dir, rng)
            doc_images.append(item)
            sizes[item.image_id] = size
        files = tuple(f"{i.image_id}.png" for i in doc_images)
        for j in range(rng.randint(*sentences_per_doc)):
            r = rng.random()
            if r < p_no_event:
                types = []
            elif r < p_no_event + p_two_events:
                types = [main, rng.choice(ontology.EVENT_TYPES)]
            else:
                types = [main if rng.random() < 0.7 else rng.choice(ontology.EVENT_TYPES)]
            s = _sentence(f"{doc_id}_{j}", doc_id, types, files, rng)
            sentences.append(s)
            for t in dict.fromkeys(e.event_type for e in s.events):
                pairs += [
                    CorefPair(s.sentence_id, i.image_id, t)
                    for i in doc_images
                    if i.events and i.events[0].event_type == t
                ]
        images += doc_images
    return SyntheticSplit(name, tuple(sentences), tuple(images), tuple(pairs), sizes)


def generate_corpus(
    image_dir: str | os.PathLike, *, seed: int = 0, train_docs: int = 200, heldout_docs: int = 50, **kwargs
) -> dict[str, SyntheticSplit]:
    """{'train': ..., 'heldout': ...}; images under image_dir/<split>/."""
    return {
        name: generate_split(name, n, os.path.join(os.fspath(image_dir), name), seed=seed, **kwargs)
        for name, n in (("train", train_docs), ("heldout", heldout_docs))
    }


def _number(v: float):
    return int(v) if float(v).is_integer() else v


def write_m2e2_format(split: SyntheticSplit, out_dir: str | os.PathLike) -> dict[str, str]:
    """Writes M2E2's layout (text json, image json, crossmedia_coref.txt); returns paths."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    def span(s):
        return {"start": s.start, "end": s.end, "text": s.text}

    text = [
        {
            "sentence_id": s.sentence_id,
            "words": list(s.words),
            "image": list(s.images),
            "golden-entity-mentions": [{"entity-type": m.entity_type, **span(m.span)} for m in s.entities],
            "golden-event-mentions": [
                {
                    "event_type": e.event_type,
                    "trigger": span(e.trigger),
                    "arguments": [{"role": a.role, **span(a.span)} for a in e.arguments],
                }
                for e in s.events
            ],
        }
        for s in split.sentences
    ]
    image = {}
    for item in split.images:
        if not item.events:
            continue
        e = item.events[0]
        roles: dict[str, list] = {}
        for a in e.arguments:
            roles.setdefault(a.role, []).append(["1", *(_number(v) for v in (a.box.x1, a.box.y1, a.box.x2, a.box.y2))])
        image[item.image_id] = {"event_type": e.event_type, "role": roles}
    paths = {
        "text": os.path.join(out_dir, f"{split.name}_text_event.json"),
        "image": os.path.join(out_dir, f"{split.name}_image_event.json"),
        "coref": os.path.join(out_dir, f"{split.name}_crossmedia_coref.txt"),
    }
    with open(paths["text"], "w", encoding="utf-8") as f:
        json.dump(text, f, indent=1)
    with open(paths["image"], "w", encoding="utf-8") as f:
        json.dump(image, f, indent=1)
    with open(paths["coref"], "w", encoding="utf-8") as f:
        f.writelines(f"{p.sentence_id}\t{p.image_id}.png\t{p.event_type}\n" for p in split.pairs)
    return paths
