"""Byte-level automata of the target grammar (docs/target_grammar.md): the character half of
constrained decoding; `constrained.py` lifts them onto a tokenizer's vocabulary.

Three kinds, all deterministic over UTF-8 bytes:
- the task **skeleton** (sentence-independent): `none`, `event: TYPE`, `trigger`, role names of
  the current type, `@k`, `relation: LABEL`. It stops at a *value entry* (after `NAME:` or
  `NAME@k:`), where a copied span or a box begins;
- a **span** automaton per sentence: ` ` + words copied from the sentence, ending on a word
  boundary with at least k occurrences of the copied words (the head's `@k`);
- a **box** automaton per (codec, frame): ` [x1, y1, x2, y2]`, every number a code inside the
  frame exactly as the codec writes it;
- a **choice** automaton per candidate list (boxes grounded in detector candidates):
  ` ` + exactly one of the listed values `LABEL [x1, y1, x2, y2]`, nothing else;
- a **pair** automaton (multimedia: a sentence and a photo): the span automaton's entries and
  the box (or choice) automaton's entry side by side.
A value ends with `\\n` (EXIT: back to the line start of the current event type, which the
decoder keeps in a register) or with the end-of-turn token (an accepting state).

Value entries are numbered: 0 = box, k = span with occurrence k (1..K_MAX). Spans that occur
more than K_MAX times can be named only up to their K_MAX-th occurrence.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence

from rmpl_jax.m2e2 import grammar, ontology
from rmpl_jax.m2e2.boxes import BoxCodec, ImageSize
from rmpl_jax.m2e2.ontology import MNRE_RELATIONS

K_MAX = 20
BOX_ENTRY = 0
N_ENTRIES = K_MAX + 1
EXIT = "exit"  # value finished with "\n": continue at the line start of the current type
NEWLINE = ord("\n")
SPACE = ord(" ")

VALUE_TASKS = {
    "text_ee": "span",
    "text_mention": "span",
    "text_argument": "span",
    "visual_ee": "box",
    "image_argument": "box",
    "image_mention": None,
    "mnre": None,
    grammar.MULTIMEDIA: "span+box",
}


# ------------------------------------------------------------------------------ skeleton


@dataclasses.dataclass
class Skeleton:
    """An explicit DFA. State s: `edges[s]` byte -> state; `accepting[s]`: the end-of-turn token
    may follow; `types[s]`: event type index the decoder's register takes on entering s (-1:
    unchanged); `entry[s]`: value entry index if s is a value entry (no edges), else -1.
    `starts` maps the given event type (argument tasks) or None to the start state;
    `line_start[t]` is where a value's `\\n` leads when the register holds type t;
    `no_event[s]`: s lies on the `none` answer of an event-block task (the decoder's
    `no_event_penalty` is charged on the token that enters it)."""

    task: str
    edges: list[dict[int, int]] = dataclasses.field(default_factory=list)
    accepting: list[bool] = dataclasses.field(default_factory=list)
    types: list[int] = dataclasses.field(default_factory=list)
    entry: list[int] = dataclasses.field(default_factory=list)
    starts: dict = dataclasses.field(default_factory=dict)
    line_start: list[int] = dataclasses.field(default_factory=list)
    no_event: list[bool] = dataclasses.field(default_factory=list)

    def new(self, *, accepting: bool = False, type_index: int = -1, entry: int = -1) -> int:
        self.edges.append({})
        self.no_event.append(False)
        self.accepting.append(accepting)
        self.types.append(type_index)
        self.entry.append(entry)
        return len(self.edges) - 1

    def path(self, src: int, text: str, dst: int | None = None) -> int:
        """Follows/creates the byte path of `text` from src (sharing existing trie nodes);
        the last byte leads to `dst` when given. Returns the final state."""
        data = text.encode("utf-8")
        node = src
        for i, b in enumerate(data):
            last = i == len(data) - 1
            nxt = self.edges[node].get(b)
            if last and dst is not None:
                if nxt is not None and nxt != dst:
                    raise ValueError(f"{self.task}: grammar conflict on {text!r}")
                self.edges[node][b] = dst
                return dst
            if nxt is None:
                nxt = self.new()
                self.edges[node][b] = nxt
            node = nxt
        return node


def build_skeleton(task: str) -> Skeleton:
    """The skeleton of one task kind (see the module docstring)."""
    if task not in VALUE_TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(VALUE_TASKS)}")
    sk = Skeleton(task)
    value = VALUE_TASKS[task]
    text_roles = task.startswith("text")
    roles = ontology.TEXT_ROLES if text_roles else ontology.IMAGE_ROLES
    n_types = len(ontology.EVENT_TYPES)

    entries = [sk.new(entry=j) for j in range(N_ENTRIES)]
    at = sk.new()  # after "NAME@": k = 2..K_MAX, no leading zero
    for k in range(2, K_MAX + 1):
        sk.path(at, f"{k}{grammar.SEP.strip()}", entries[k])

    def value_head(node: int, kind: str = value) -> None:
        if kind == "span":
            sk.path(node, grammar.SEP.strip(), entries[1])
            sk.path(node, grammar.OCCURRENCE, at)
        else:
            sk.path(node, grammar.SEP.strip(), entries[BOX_ENTRY])

    def none_line(node: int) -> None:
        sk.accepting[sk.path(node, grammar.NONE)] = True

    def role_lines(node: int, event_type: str) -> None:
        for role in roles[event_type]:
            value_head(sk.path(node, role))

    if task == "mnre":
        start = sk.new()
        colon = sk.path(start, f"{grammar.RELATION}{grammar.SEP}")
        for label in MNRE_RELATIONS:
            sk.accepting[sk.path(colon, label)] = True
        sk.starts[None] = start
        sk.line_start = [start] * n_types
        return sk

    if task == grammar.MULTIMEDIA:
        return _multimedia_skeleton(sk, value_head, none_line)

    if task in ("text_argument", "image_argument"):
        line = []
        for t, event_type in enumerate(ontology.EVENT_TYPES):
            start = sk.new(type_index=t)
            none_line(start)
            role_lines(start, event_type)
            ls = sk.new()
            role_lines(ls, event_type)
            sk.starts[event_type] = start
            line.append(ls)
        sk.line_start = line
        return sk

    # Event-block tasks: text_ee, text_mention, visual_ee, image_mention.
    type_root = sk.new()  # after "event:"
    leaves = [sk.path(type_root, " " + event_type) for event_type in ontology.EVENT_TYPES]
    for t, leaf in enumerate(leaves):
        sk.types[leaf] = t

    def event_line(node: int) -> None:
        sk.path(node, grammar.EVENT + grammar.SEP.strip(), type_root)

    start = sk.new()
    _no_event_answer(sk, start, none_line)
    event_line(start)
    sk.starts[None] = start
    with_trigger = task in ("text_ee", "text_mention")
    with_roles = task in ("text_ee", "visual_ee")
    if with_trigger:  # the trigger line follows its event line directly
        after_event = sk.new()
        value_head(sk.path(after_event, grammar.TRIGGER))
        for leaf in leaves:
            sk.edges[leaf][NEWLINE] = after_event
    if with_roles:
        line = []
        for event_type in ontology.EVENT_TYPES:
            ls = sk.new()
            event_line(ls)
            role_lines(ls, event_type)
            line.append(ls)
        sk.line_start = line
    else:
        ls = sk.new()
        event_line(ls)
        sk.line_start = [ls] * n_types
    if not with_trigger:  # image tasks: an event line may end the answer or be followed by lines
        for t, leaf in enumerate(leaves):
            sk.accepting[leaf] = True
            sk.edges[leaf][NEWLINE] = sk.line_start[t]
    return sk


def _no_event_answer(sk: Skeleton, start: int, none_line) -> None:
    """The `none` answer from `start`, its states marked `no_event` (where the decoder's
    `no_event_penalty` is charged)."""
    none_line(start)
    state = start
    for b in grammar.NONE.encode("utf-8"):
        state = sk.edges[state][b]
        sk.no_event[state] = True


def _multimedia_skeleton(sk: Skeleton, value_head, none_line) -> Skeleton:
    """`none`, or one event: `event: T`, `trigger:` + span, then text role lines (spans) and
    `image ROLE` lines (boxes) of type T in any order; no second event line."""
    type_root = sk.new()
    start = sk.new()
    _no_event_answer(sk, start, none_line)
    sk.path(start, grammar.EVENT + grammar.SEP.strip(), type_root)
    sk.starts[None] = start
    after_event = sk.new()
    value_head(sk.path(after_event, grammar.TRIGGER), "span")
    line = []
    for t, event_type in enumerate(ontology.EVENT_TYPES):
        leaf = sk.path(type_root, " " + event_type)
        sk.types[leaf] = t
        sk.edges[leaf][NEWLINE] = after_event
        ls = sk.new()
        for role in ontology.TEXT_ROLES[event_type]:
            value_head(sk.path(ls, role), "span")
        for role in ontology.IMAGE_ROLES[event_type]:
            value_head(sk.path(ls, grammar.IMAGE_ROLE + role), "box")
        line.append(ls)
    sk.line_start = line
    return sk


# ------------------------------------------------------------------------------ spans


class SpanAutomaton:
    """` ` + words copied from `words`, for each occurrence index k.

    States: ('entry', k) before the space; (k, P, started) after it, P the set of byte positions
    in the joined sentence that the text so far reaches from some word start. Accepting when at
    least k of P are word ends (and some text was copied). Deterministic: P is a function of the
    text so far, so a copied value maps to exactly the spans `grammar.span_occurrences` finds.
    """

    def __init__(self, words: Sequence[str]):
        self.words = tuple(words)
        self.text = " ".join(self.words).encode("utf-8")
        starts, ends, pos = [], set(), 0
        for w in self.words:
            n = len(w.encode("utf-8"))
            if n:
                starts.append(pos)
                ends.add(pos + n)
            pos += n + 1
        self.starts = frozenset(starts)
        self.ends = frozenset(ends)
        counts = collections.Counter(w for w in self.words if w)
        self.max_count = max(counts.values(), default=0)
        self._memo: dict = {}

    def entries(self) -> dict[int, object]:
        """Value entry index -> state, for the k that can occur at all."""
        return {k: ("entry", k) for k in range(1, min(K_MAX, self.max_count) + 1)}

    def accepting(self, state) -> bool:
        if state[0] == "entry" or not state[2]:
            return False
        k, positions, _ = state
        return sum(p in self.ends for p in positions) >= k

    def step(self, state) -> dict[int, object]:
        """byte -> next state (or EXIT); absent bytes are not allowed."""
        out = self._memo.get(state)
        if out is not None:
            return out
        if state[0] == "entry":
            k = state[1]
            out = {SPACE: (k, self.starts, False)} if len(self.starts) >= k else {}
        else:
            k, positions, _ = state
            groups: dict[int, list[int]] = {}
            for p in positions:
                if p < len(self.text):
                    groups.setdefault(self.text[p], []).append(p + 1)
            out = {b: (k, frozenset(ps), True) for b, ps in groups.items() if len(ps) >= k}
            if self.accepting(state):
                out[NEWLINE] = EXIT  # sentences hold no newline, so no clash
        self._memo[state] = out
        return out


# ------------------------------------------------------------------------------ boxes


def _minimal_dfa(strings: Iterable[bytes]) -> tuple[list[dict[int, int]], list[bool], int]:
    """Minimal DFA of a finite language: a trie with equal subtrees merged (bottom-up)."""
    trie: list[dict[int, int]] = [{}]
    final = [False]
    for s in strings:
        node = 0
        for b in s:
            nxt = trie[node].get(b)
            if nxt is None:
                nxt = len(trie)
                trie.append({})
                final.append(False)
                trie[node][b] = nxt
            node = nxt
        final[node] = True
    order, stack = [], [(0, False)]
    while stack:  # iterative post-order
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in trie[node].values())
    canon: dict[int, int] = {}
    ids: dict[tuple, int] = {}
    edges: list[dict[int, int]] = []
    finals: list[bool] = []
    for node in order:
        sig = (final[node], tuple(sorted((b, canon[c]) for b, c in trie[node].items())))
        if sig not in ids:
            ids[sig] = len(edges)
            edges.append(dict(sig[1]))
            finals.append(sig[0])
        canon[node] = ids[sig]
    return edges, finals, canon[0]


def code_strings(codec: BoxCodec, low: float, high: float) -> list[bytes]:
    """Every code in [low, high] on the codec's grid, written as the codec writes it."""
    scale = 10**codec.decimals
    lo, hi = round(low * scale), round(high * scale)
    if codec.decimals == 0:
        return [str(u).encode() for u in range(lo, hi + 1)]
    return [f"{u / scale:.{codec.decimals}f}".encode() for u in range(lo, hi + 1)]


class BoxAutomaton:
    """` [x1, y1, x2, y2]` with x codes in the frame's x bounds and y codes in its y bounds.

    States: (part, sub), parts = literal ' [' / x / ', ' / y / ', ' / x / ', ' / y / ']';
    `sub` is the offset in a literal or the state of the part's number DFA; (9, 0) is done.
    """

    def __init__(self, codec: BoxCodec, frame: ImageSize):
        x_min, y_min, x_max, y_max = codec.code_bounds(tuple(frame))
        xs = _minimal_dfa(code_strings(codec, x_min, x_max))
        ys = _minimal_dfa(code_strings(codec, y_min, y_max))
        comma = b", "
        self.parts = [b" [", xs, comma, ys, comma, xs, comma, ys, b"]"]
        self.done = (len(self.parts), 0)
        self._memo: dict = {}

    def entries(self) -> dict[int, object]:
        return {BOX_ENTRY: (0, 0)}

    def _first(self, i: int):
        if i == len(self.parts):
            return self.done
        part = self.parts[i]
        return (i, 0) if isinstance(part, bytes) else (i, part[2])

    def accepting(self, state) -> bool:
        return state == self.done

    def step(self, state) -> dict[int, object]:
        out = self._memo.get(state)
        if out is not None:
            return out
        i, sub = state
        out = {}
        if state == self.done:
            out[NEWLINE] = EXIT
        elif isinstance(self.parts[i], bytes):
            lit = self.parts[i]
            out[lit[sub]] = (i, sub + 1) if sub + 1 < len(lit) else self._first(i + 1)
        else:
            edges, finals, _ = self.parts[i]
            out = {b: (i, n) for b, n in edges[sub].items()}
            if finals[sub]:  # the number may end here: the next literal's first byte
                nxt = self.step(self._first(i + 1))
                out.update(nxt)  # digits never start a literal, so no clash
        self._memo[state] = out
        return out


# ------------------------------------------------------------------------------ pairs


class PairAutomaton:
    """A sentence's span automaton (entries 1..K_MAX) beside a photo's box or choice automaton
    (entry 0), for answers with both kinds of value (multimedia). States are tagged with the
    side they belong to; EXIT stays shared."""

    def __init__(self, spans: SpanAutomaton, boxes):
        self.sides = (spans, boxes)

    def entries(self) -> dict[int, object]:
        out = {j: (0, s) for j, s in self.sides[0].entries().items() if j != BOX_ENTRY}
        out.update({j: (1, s) for j, s in self.sides[1].entries().items() if j == BOX_ENTRY})
        return out

    def accepting(self, state) -> bool:
        return self.sides[state[0]].accepting(state[1])

    def step(self, state) -> dict[int, object]:
        side, inner = state
        return {b: nxt if nxt == EXIT else (side, nxt) for b, nxt in self.sides[side].step(inner).items()}


# ------------------------------------------------------------------------------ choices


class ChoiceAutomaton:
    """` ` + exactly one of `choices` (a photo's candidate values), at the box entry: a box can
    only copy a listed candidate, the way a span can only copy the sentence. No choices: no box
    value can be written (only `none` finishes the answer)."""

    def __init__(self, choices: Sequence[str]):
        for c in choices:
            if not c or "\n" in c or "\r" in c:
                raise ValueError(f"candidate value {c!r} must be non-empty and without line breaks")
        self.choices = tuple(choices)
        self.edges, self.finals, self.root = _minimal_dfa(b" " + c.encode("utf-8") for c in self.choices)

    def entries(self) -> dict[int, object]:
        return {BOX_ENTRY: self.root} if self.choices else {}

    def accepting(self, state) -> bool:
        return self.finals[state]

    def step(self, state) -> dict[int, object]:
        out = dict(self.edges[state])
        if self.finals[state]:
            out[NEWLINE] = EXIT  # values hold no newline, so no clash
        return out
