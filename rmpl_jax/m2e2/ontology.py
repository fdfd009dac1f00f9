"""The M2E2 ontology: event types, text and image roles, and the maps into it.

M2E2 keeps 8 of ACE2005's 33 event subtypes. Text arguments use ACE roles (time
roles dropped, as M2E2 does); image roles are exactly the ones that occur in the
M2E2 image annotations. Other sources are mapped here: ACE subtypes (any spelling)
through `ace_to_m2e2`, imSitu verb/role pairs through the mapping file read by
`load_imsitu_mapping`.
"""

from __future__ import annotations

import dataclasses
import os
import re

from rmpl_jax.io.lines import numbered_lines
from rmpl_jax.io.read_report import DataError

EVENT_TYPES: tuple[str, ...] = (
    "Conflict:Attack",
    "Conflict:Demonstrate",
    "Contact:Meet",
    "Contact:Phone-Write",
    "Justice:Arrest-Jail",
    "Life:Die",
    "Movement:Transport",
    "Transaction:Transfer-Money",
)

# ACE2005 argument roles per type, without Time-*; Police for Demonstrate is an
# M2E2 addition that its text annotations use.
TEXT_ROLES: dict[str, tuple[str, ...]] = {
    "Conflict:Attack": ("Attacker", "Target", "Instrument", "Place"),
    "Conflict:Demonstrate": ("Entity", "Police", "Place"),
    "Contact:Meet": ("Entity", "Place"),
    "Contact:Phone-Write": ("Entity", "Place"),
    "Justice:Arrest-Jail": ("Agent", "Person", "Crime", "Place"),
    "Life:Die": ("Agent", "Victim", "Instrument", "Place"),
    "Movement:Transport": ("Agent", "Artifact", "Vehicle", "Price", "Origin", "Destination"),
    "Transaction:Transfer-Money": ("Giver", "Recipient", "Beneficiary", "Money", "Place"),
}

# Roles that occur in M2E2's image annotations (image_only/image_multimedia_event.json).
IMAGE_ROLES: dict[str, tuple[str, ...]] = {
    "Conflict:Attack": ("Attacker", "Target", "Instrument"),
    "Conflict:Demonstrate": ("Entity", "Police", "Instrument", "Place"),
    "Contact:Meet": ("Entity",),
    "Contact:Phone-Write": ("Entity", "Instrument"),
    "Justice:Arrest-Jail": ("Agent", "Person", "Instrument"),
    "Life:Die": ("Victim", "Instrument"),
    "Movement:Transport": ("Agent", "Artifact", "Vehicle"),
    "Transaction:Transfer-Money": ("Giver", "Recipient", "Money"),
}

# The 23 relation labels of MNRE v2 (multimodal relation extraction, a stage-1 task), in a
# fixed order: the `mnre` task's vocabulary.
MNRE_RELATIONS: tuple[str, ...] = (
    "None",
    "/per/per/parent",
    "/per/per/siblings",
    "/per/per/couple",
    "/per/per/neighbor",
    "/per/per/peer",
    "/per/per/charges",
    "/per/per/alumi",
    "/per/per/alternate_names",
    "/per/org/member_of",
    "/per/loc/place_of_residence",
    "/per/loc/place_of_birth",
    "/per/misc/nationality",
    "/per/misc/present_in",
    "/per/misc/awarded",
    "/per/misc/race",
    "/per/misc/religion",
    "/org/org/alternate_names",
    "/org/org/subsidiary",
    "/org/loc/locate_at",
    "/loc/loc/contain",
    "/misc/loc/held_on",
    "/misc/misc/part_of",
)
ACE_SUBTYPES: tuple[str, ...] = (
    "Life:Be-Born",
    "Life:Marry",
    "Life:Divorce",
    "Life:Injure",
    "Life:Die",
    "Movement:Transport",
    "Transaction:Transfer-Ownership",
    "Transaction:Transfer-Money",
    "Business:Start-Org",
    "Business:Merge-Org",
    "Business:Declare-Bankruptcy",
    "Business:End-Org",
    "Conflict:Attack",
    "Conflict:Demonstrate",
    "Contact:Meet",
    "Contact:Phone-Write",
    "Personnel:Start-Position",
    "Personnel:End-Position",
    "Personnel:Nominate",
    "Personnel:Elect",
    "Justice:Arrest-Jail",
    "Justice:Release-Parole",
    "Justice:Trial-Hearing",
    "Justice:Charge-Indict",
    "Justice:Sue",
    "Justice:Convict",
    "Justice:Sentence",
    "Justice:Fine",
    "Justice:Execute",
    "Justice:Extradite",
    "Justice:Acquit",
    "Justice:Appeal",
    "Justice:Pardon",
)

_CANONICAL = {re.sub(r"[^a-z]", "", t.lower()): t for t in ACE_SUBTYPES}


def canonical_ace_subtype(name: str) -> str:
    """Returns the canonical ACE subtype for any common spelling, or raises ValueError.

    Accepts `Justice:Arrest-Jail`, `Justice||Arrest|Jail`, `justice:arrest_jail`,
    `Transaction||Transfer|MONEY` and the like (case, separators ignored).
    """
    key = re.sub(r"[^a-z]", "", name.lower())
    if key not in _CANONICAL:
        raise ValueError(f"unknown ACE event subtype {name!r}")
    return _CANONICAL[key]


def ace_to_m2e2(name: str) -> str | None:
    """Maps an ACE subtype (any spelling) to its M2E2 type, or None for the other 25."""
    subtype = canonical_ace_subtype(name)
    return subtype if subtype in TEXT_ROLES else None


def is_text_role(event_type: str, role: str) -> bool:
    return role in TEXT_ROLES.get(event_type, ())


def is_image_role(event_type: str, role: str) -> bool:
    return role in IMAGE_ROLES.get(event_type, ())


@dataclasses.dataclass(frozen=True)
class ImsituMapping:
    """imSitu (verb, role) -> (M2E2 type, role); verbs absent from it have no M2E2 event."""

    roles: dict[tuple[str, str], tuple[str, str]]
    verb_types: dict[str, str]

    def event_type(self, verb: str) -> str | None:
        """The M2E2 type of an imSitu verb, or None when the verb is unmapped."""
        return self.verb_types.get(verb)

    def role(self, verb: str, role: str) -> str | None:
        """The M2E2 role of an imSitu verb's role, or None when unmapped."""
        mapped = self.roles.get((verb, role))
        return mapped[1] if mapped else None


def load_imsitu_mapping(path: str | os.PathLike) -> ImsituMapping:
    """Reads `ace_sr_mapping.txt`: `verb TAB role TAB ACE-type TAB ACE-role` per line.

    ACE types are in the file's `Justice||Arrest|Jail` spelling; they are canonicalised
    and must be M2E2 types. Raises DataError naming the file and line on a bad line.
    """
    roles: dict[tuple[str, str], tuple[str, str]] = {}
    verb_types: dict[str, str] = {}
    for lineno, line in numbered_lines(path):
        fields = line.split("\t")
        where = f"{path}:{lineno}"
        if len(fields) != 4 or not all(x.strip() for x in fields):
            raise DataError(f"{where}: expected 4 tab-separated fields, got {line.rstrip()!r}")
        verb, role, ace_type, ace_role = (x.strip() for x in fields)
        try:
            event_type = ace_to_m2e2(ace_type)
        except ValueError as e:
            raise DataError(f"{where}: {e}") from None
        if event_type is None:
            raise DataError(f"{where}: {ace_type!r} is not one of the 8 M2E2 types")
        if verb_types.setdefault(verb, event_type) != event_type:
            raise DataError(f"{where}: verb {verb!r} mapped to both {verb_types[verb]} and {event_type}")
        roles[(verb, role)] = (event_type, ace_role)
    return ImsituMapping(roles, verb_types)
