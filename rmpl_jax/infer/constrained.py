"""Schema-constrained decoding: the byte automata of `byte_automata` lifted onto a tokenizer's
vocabulary as integer tables the jitted decode loop carries (see `decode.py`).

A token is allowed in a state when its bytes walk through the automaton and end in a state
(tokens may span several grammar pieces, e.g. ` Conflict` or `]\\n`, but never run past a value
entry or past a value's closing `\\n`). Tables are dense over *candidate* tokens only: the
decoder gathers the logits of the candidates, masks them and picks among them, so no mask
over the full vocabulary is ever built.

Two tables per decode call:
- the **skeleton** of the task (shared by every example, built once per tokenizer and task):
  `next[S_s, C_s]` with skeleton rows, value entries as `S_s + j`, -1 not allowed;
- the **values** of each example (its sentence's span automaton or its frame's box automaton):
  `next[S_v, C_v]` with value rows (local), -2 = EXIT (the line start of the event type in the
  decoder's register), -3 = end of answer (the processor's end-of-turn token), -1 not allowed. Rows
  0..N_ENTRIES-1 are the value entries (0: box, k: span with occurrence k).

Termination is part of the constraint: `dist[q]` is the fewest tokens that finish the answer
from q (end-of-turn token included), and a token is allowed only if the answer can still be
finished within the remaining budget, so every output ends with the end-of-turn token and
parses with zero failures. The skeleton's distances depend on which value entries the example
can complete: dist = min(direct, min_j tokdist[:, j] + dist_value[entry j]), done in the jit.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rmpl_jax.infer.automata import (
    EXIT,
    N_ENTRIES,
    VALUE_TASKS,
    BoxAutomaton,
    ChoiceAutomaton,
    PairAutomaton,
    SpanAutomaton,
    build_skeleton,
)
from rmpl_jax.m2e2 import grammar, ontology
from rmpl_jax.m2e2.boxes import BoxCodec, ImageSize

INF = 1 << 20
DEAD, TO_LINE_START, TO_END = -1, -2, -3


# ------------------------------------------------------------------------------ vocabulary


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2 byte-level alphabet, unicode char -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, shift = {}, 0
    for b in range(256):
        if b in printable:
            out[chr(b)] = b
        else:
            out[chr(256 + shift)] = b
            shift += 1
    return out


def _sentencepiece_bytes(piece: str) -> bytes | None:
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        return bytes([int(piece[3:5], 16)])
    return piece.replace("\u2581", " ").encode("utf-8")


@dataclasses.dataclass(frozen=True, eq=False)
class TokenVocab:
    """The bytes of every token (None for special/added tokens), indexed for prefix search.

    Byte-level BPE (Qwen, GPT-2 style) maps each token's characters back through the GPT-2
    alphabet; SentencePiece vocabularies (`▁`, `<0xNN>`) are read as such.
    """

    pieces: tuple[bytes | None, ...]
    eos_id: int
    sorted_pieces: tuple[bytes, ...]
    ids_of: dict

    @classmethod
    def from_tokenizer(cls, tokenizer, eos_token: str) -> TokenVocab:
        """`eos_token`: the token string that ends every answer (`Processor.end_of_turn`)."""
        eos_id = tokenizer.convert_tokens_to_ids(eos_token)
        # An unknown token converts to the unknown id; the unknown token itself may be the eos
        # (Qwen2 tokenizers name '<|endoftext|>' both).
        if eos_id is None or (eos_id == tokenizer.unk_token_id and eos_token != tokenizer.unk_token):
            raise ValueError(f"tokenizer has no {eos_token!r} token (the end of every target)")
        n = max(len(tokenizer), max(tokenizer.get_vocab().values(), default=-1) + 1)
        names = tokenizer.convert_ids_to_tokens(list(range(n)))
        added_tokens = dict(getattr(tokenizer, "added_tokens_decoder", {}) or {})
        special = set(tokenizer.all_special_ids) | {i for i, t in added_tokens.items() if t.special}
        byte_of = _gpt2_byte_decoder()
        byte_level = _is_byte_level(tokenizer, byte_of)
        pieces: list[bytes | None] = []
        for i, name in enumerate(names):
            if i in special or name is None:
                pieces.append(None)
            elif i in added_tokens:
                # A user-defined token is its literal text, which the tokenizer splits off before
                # anything else (Gemma's "\n", "\n\n", ...): the model writes newlines with it.
                pieces.append(added_tokens[i].content.encode("utf-8"))
            elif byte_level:
                try:
                    pieces.append(bytes(byte_of[c] for c in name))
                except KeyError:
                    pieces.append(None)
            else:
                pieces.append(_sentencepiece_bytes(name))
        return cls.from_pieces(pieces, eos_id)

    @classmethod
    def from_pieces(cls, pieces: Sequence[bytes | None], eos_id: int) -> TokenVocab:
        ids_of: dict[bytes, list[int]] = collections.defaultdict(list)
        for i, p in enumerate(pieces):
            if p:
                ids_of[p].append(i)
        return cls(tuple(pieces), int(eos_id), tuple(sorted(ids_of)), {p: tuple(v) for p, v in ids_of.items()})

    def has_prefix(self, prefix: bytes) -> bool:
        """Some token starts with these bytes."""
        i = bisect.bisect_left(self.sorted_pieces, prefix)
        return i < len(self.sorted_pieces) and self.sorted_pieces[i].startswith(prefix)

    def text(self, ids: Sequence[int], names: Sequence[str] | None = None) -> str:
        """The generated text up to (not including) the end-of-turn token: token bytes joined
        and decoded as UTF-8 (no tokenizer clean-up, so copied spans stay byte-exact). Tokens
        without bytes (special tokens) are written as `names[i]` when given, else dropped."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            p = self.pieces[i] if 0 <= i < len(self.pieces) else None
            if p is not None:
                out += p
            elif names is not None and 0 <= i < len(names) and names[i]:
                out += names[i].encode("utf-8")
        return out.decode("utf-8", errors="replace")


_VOCABS: dict[tuple[int, str], tuple[object, TokenVocab]] = {}


def _is_byte_level(tokenizer, byte_of: dict[str, int]) -> bool:
    """Whether token names are GPT-2 byte-level strings ('Ġ' for a space): the fast
    tokenizer's decoder says so, a ByteLevel one alone or inside a Sequence (a SentencePiece
    decoder replaces '▁' and falls back to bytes instead); without a decoder, nearly every
    byte character is a token and none holds '▁'. (Counting alone fails both ways: SmolLM2
    has 235 of the 256 byte characters, a 262k SentencePiece vocabulary has them all.)"""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is not None:
        return '"ByteLevel"' in decoder.__getstate__().decode("utf-8")  # its JSON, nested decoders included
    known = tokenizer.get_vocab()
    return sum(1 for c in byte_of if c in known) >= 250 and not any("\u2581" in t for t in known)


def vocab_for(tokenizer, eos_token: str) -> TokenVocab:
    """TokenVocab of a tokenizer whose answers end with `eos_token`, built once per pair."""
    key = (id(tokenizer), eos_token)
    hit = _VOCABS.get(key)
    if hit is None or hit[0] is not tokenizer:
        hit = (tokenizer, TokenVocab.from_tokenizer(tokenizer, eos_token))
        _VOCABS[key] = hit
    return hit[1]


# ------------------------------------------------------------------------------ token walk


def _token_graph(step, roots: Sequence, vocab: TokenVocab, terminal):
    """Rows of states reachable at token boundaries from `roots`, and their token edges.

    step(state) -> {byte: next}; terminal(next) says the walk must stop there (a value entry,
    EXIT). Returns (rows: list of states, index: state -> row, edges: per row a list of
    (token id, target state)), the end-of-turn token not included.
    """
    rows, index = [], {}

    def row(state) -> int:
        if state not in index:
            index[state] = len(rows)
            rows.append(state)
        return index[state]

    for r in roots:
        row(r)
    edges: list[list[tuple[int, object]]] = []
    i = 0
    while i < len(rows):
        out = []
        stack = [(rows[i], b"")]
        while stack:
            state, prefix = stack.pop()
            for b, nxt in step(state).items():
                piece = prefix + bytes((b,))
                if not vocab.has_prefix(piece):
                    continue
                ids = vocab.ids_of.get(piece, ())
                end_here = terminal(nxt)
                for tid in ids:
                    out.append((tid, nxt))
                if ids and not end_here:
                    row(nxt)
                if not end_here:
                    stack.append((nxt, piece))
        edges.append(out)
        i += 1
    return rows, index, edges


def _reverse_bfs(n: int, edges: Sequence[Sequence[int]], sources: dict[int, int]) -> np.ndarray:
    """Fewest unit steps from every node to a source (sources carry their own distance)."""
    rev: list[list[int]] = [[] for _ in range(n)]
    for a, targets in enumerate(edges):
        for b in targets:
            if 0 <= b < n:
                rev[b].append(a)
    dist = np.full(n, INF, np.int64)
    # Sources may start at different distances: process in order of distance (a bucket queue).
    frontier: dict[int, list[int]] = collections.defaultdict(list)
    for node, d in sources.items():
        frontier[d].append(node)
    level = min(frontier, default=0)
    while frontier:
        nodes = frontier.pop(level, [])
        for node in nodes:
            if dist[node] <= level:
                continue
            dist[node] = level
            for prev in rev[node]:
                if dist[prev] > level + 1:
                    frontier[level + 1].append(prev)
        if frontier:
            level = min(frontier)
    return np.minimum(dist, INF).astype(np.int32)


def _columns(edge_lists, extra: Sequence[int]) -> tuple[np.ndarray, dict[int, int]]:
    ids = sorted({tid for edges in edge_lists for tid, _ in edges} | set(extra))
    return np.asarray(ids, np.int32), {t: c for c, t in enumerate(ids)}


# ------------------------------------------------------------------------------ skeleton


@dataclasses.dataclass(frozen=True, eq=False)
class TaskGrammar:
    """The task's skeleton as token tables (shared by all examples of the task).

    next [S, C] int32: skeleton row, S + j for value entry j, -1; ids [C]: candidate token ids;
    types [S]: event type the register takes on entering the row (-1 keeps it);
    direct [S]: fewest tokens to the end without a value (INF if none);
    tokdist [S, N_ENTRIES]: fewest tokens to value entry j; line_start [8] rows; end: the row
    after the end-of-turn token; no_event [S] bool: rows inside the `none` answer of an
    event-block task (the decoder charges `no_event_penalty` on the token that enters one).
    """

    task: str
    vocab: TokenVocab
    next: np.ndarray
    ids: np.ndarray
    types: np.ndarray
    direct: np.ndarray
    tokdist: np.ndarray
    line_start: np.ndarray
    starts: dict
    end: int
    no_event: np.ndarray
    _device: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def num_states(self) -> int:
        return int(self.next.shape[0])

    def start(self, event_type: str | None = None) -> int:
        """Start row (argument tasks: of the given event's type)."""
        key = event_type if self.task in ("text_argument", "image_argument") else None
        if key not in self.starts:
            raise ValueError(
                f"task {self.task} needs a given event type, one of {ontology.EVENT_TYPES}; got {event_type!r}"
            )
        return self.starts[key]

    def arrays(self) -> SkeletonArrays:
        """The skeleton part of the decode loop's constraint inputs (numpy)."""
        return SkeletonArrays(
            next=self.next,
            ids=self.ids,
            types=self.types,
            direct=self.direct,
            tokdist=self.tokdist,
            line_start=self.line_start,
            end=np.asarray(self.end, np.int32),
            no_event=self.no_event,
        )

    def device_arrays(self) -> SkeletonArrays:
        """`arrays()` on the default device, transferred once."""
        if "skeleton" not in self._device:
            self._device["skeleton"] = jax.tree.map(jnp.asarray, self.arrays())
        return self._device["skeleton"]


@struct.dataclass
class SkeletonArrays:
    """A task's skeleton as the decode loop reads it (`TaskGrammar.arrays`; S_s skeleton rows,
    C_s skeleton candidate tokens, J = N_ENTRIES value entries).

    next [S_s, C_s] int32: the next global state per candidate (a skeleton row, S_s + j for
    value entry j, -1 not allowed); ids [C_s] int32: the candidates' token ids; types [S_s]
    int32: the event type the register takes on entering a row (-1 keeps it); direct [S_s]
    int32: fewest tokens to the end without a value (INF if none); tokdist [S_s, J] int32:
    fewest tokens to value entry j; line_start [8] int32: the row an event line of each type
    starts at (where a value's EXIT goes); end [] int32: the row after the end-of-turn token;
    no_event [S_s] bool: rows inside the `none` answer of an event-block task.
    """

    next: jax.Array
    ids: jax.Array
    types: jax.Array
    direct: jax.Array
    tokdist: jax.Array
    line_start: jax.Array
    end: jax.Array
    no_event: jax.Array


@struct.dataclass
class ValueArrays:
    """The value tables of a batch's examples as the decode loop reads them (`batch_arrays`;
    B rows, padded to S_v value rows and C_v value candidates).

    next [B, S_v, C_v] int16: per row, the next local value row per candidate (-1 not allowed,
    -2 EXIT to the line start of the register's type, -3 end of answer); ids [B, C_v] int32:
    the candidates' token ids (0 in padding); dist [B, S_v] int32: fewest tokens to the end
    from each value row (INF in padding); start [B] int32: each row's start state; type0 [B]
    int32: each row's initial event-type register (-1: none).
    """

    next: jax.Array
    ids: jax.Array
    dist: jax.Array
    start: jax.Array
    type0: jax.Array


@struct.dataclass
class ConstraintTables:
    """Everything constrained decoding reads in the loop: the task's skeleton (shared by the
    batch) and the batch's value tables. Global states: skeleton rows 0..S_s-1, value rows
    S_s + r."""

    skeleton: SkeletonArrays
    values: ValueArrays


@functools.lru_cache(maxsize=64)
def _grammar_cached(task: str, vocab: TokenVocab) -> TaskGrammar:
    sk = build_skeleton(task)
    entry_of = {s: j for s, j in enumerate(sk.entry) if j >= 0}
    roots = list(dict.fromkeys([*sk.starts.values(), *sk.line_start]))
    rows, index, edges = _token_graph(lambda s: sk.edges[s], roots, vocab, terminal=lambda s: s in entry_of)
    end = len(rows)  # the sink after the end-of-turn token
    n = end + 1
    ids, col = _columns(edges, [vocab.eos_id])
    table = np.full((n, len(ids)), DEAD, np.int32)
    for r, out in enumerate(edges):
        for tid, nxt in out:
            table[r, col[tid]] = n + entry_of[nxt] if nxt in entry_of else index[nxt]
        if sk.accepting[rows[r]]:
            table[r, col[vocab.eos_id]] = end
    types = np.asarray([sk.types[s] for s in rows] + [-1], np.int32)
    # Distances over rows + entries (n .. n+N_ENTRIES-1) + the end row.
    succ = [[int(x) for x in table[r][table[r] >= 0]] for r in range(n)] + [[] for _ in range(N_ENTRIES)]
    direct = _reverse_bfs(n + N_ENTRIES, succ, {end: 0})[:n]
    tokdist = np.stack([_reverse_bfs(n + N_ENTRIES, succ, {n + j: 0})[:n] for j in range(N_ENTRIES)], 1)
    starts = {k: index[s] for k, s in sk.starts.items()}
    line_start = np.asarray([index[s] for s in sk.line_start], np.int32)
    no_event = np.asarray([sk.no_event[s] for s in rows] + [False], bool)
    return TaskGrammar(task, vocab, table, ids, types, direct, tokdist, line_start, starts, end, no_event)


def task_grammar(task: str, vocab: TokenVocab) -> TaskGrammar:
    """The token tables of a task's skeleton (cached per task and vocabulary)."""
    return _grammar_cached(task, vocab)


# ------------------------------------------------------------------------------ values


@dataclasses.dataclass(frozen=True, eq=False)
class ValueTables:
    """One example's value automaton as token tables, stored sparse (most entries are -1):
    entry (rows[i], cols[i]) of the [num_rows, len(ids)] table is vals[i] (local row, -2 EXIT,
    -3 end); ids: candidate token ids; dist [num_rows]: fewest tokens to the end."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    ids: np.ndarray
    dist: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dist), len(self.ids)

    def dense(self) -> np.ndarray:
        table = np.full(self.shape, DEAD, np.int16)
        table[self.rows, self.cols] = self.vals
        return table


def _value_tables(automaton, vocab: TokenVocab) -> ValueTables:
    entries = automaton.entries()
    placeholder = [("unused", j) for j in range(N_ENTRIES)]
    roots = [entries.get(j, placeholder[j]) for j in range(N_ENTRIES)]
    unused = set(placeholder)

    def step(state):
        return {} if state in unused else automaton.step(state)

    rows, index, edges = _token_graph(step, roots, vocab, terminal=lambda s: s == EXIT)
    ids, col = _columns(edges, [vocab.eos_id])
    if len(rows) >= 32767:
        raise ValueError(f"value automaton of {len(rows)} states is too large for int16 tables")
    entries: dict[tuple[int, int], int] = {}
    accepting = {}
    succ: list[list[int]] = []
    for r, out in enumerate(edges):
        targets = []
        for tid, nxt in out:
            value = TO_LINE_START if nxt == EXIT else index[nxt]
            entries[(r, col[tid])] = value
            if value >= 0:
                targets.append(value)
        if rows[r] not in unused and automaton.accepting(rows[r]):
            entries[(r, col[vocab.eos_id])] = TO_END
            accepting[r] = 1
        succ.append(targets)
    # Shortest finish inside the value: a line-start exit is never shorter than ending the
    # value with the end-of-turn token, so value-to-value edges and accepting rows suffice.
    dist = _reverse_bfs(len(rows), succ, accepting)
    keys = np.asarray(list(entries), np.int32).reshape(-1, 2)
    return ValueTables(keys[:, 0].copy(), keys[:, 1].copy(), np.asarray(list(entries.values()), np.int16), ids, dist)


@functools.lru_cache(maxsize=8192)
def _span_cached(words: tuple[str, ...], vocab: TokenVocab) -> ValueTables:
    return _value_tables(SpanAutomaton(words), vocab)


@functools.lru_cache(maxsize=256)
def _box_cached(codec: BoxCodec, frame: tuple[int, int], vocab: TokenVocab) -> ValueTables:
    return _value_tables(BoxAutomaton(codec, frame), vocab)


@functools.lru_cache(maxsize=4096)
def _choice_cached(choices: tuple[str, ...], vocab: TokenVocab) -> ValueTables:
    return _value_tables(ChoiceAutomaton(choices), vocab)


@functools.lru_cache(maxsize=1024)
def _pair_cached(words: tuple[str, ...], boxes: tuple, vocab: TokenVocab) -> ValueTables:
    kind, *args = boxes
    box_side = ChoiceAutomaton(args[0]) if kind == "choices" else BoxAutomaton(args[0], args[1])
    return _value_tables(PairAutomaton(SpanAutomaton(words), box_side), vocab)


@functools.lru_cache(maxsize=8)
def _no_values(vocab: TokenVocab) -> ValueTables:
    empty = np.zeros(0, np.int32)
    return ValueTables(
        empty, empty, empty.astype(np.int16), np.asarray([vocab.eos_id], np.int32), np.full(N_ENTRIES, INF, np.int32)
    )


def span_tables(words: Sequence[str], vocab: TokenVocab) -> ValueTables:
    """Value tables of a sentence (copied spans), cached per sentence."""
    return _span_cached(tuple(words), vocab)


def choice_tables(choices: Sequence[str], vocab: TokenVocab) -> ValueTables:
    """Value tables of a candidate list (a box copies one listed value), cached per list."""
    return _choice_cached(tuple(choices), vocab)


def box_tables(codec: BoxCodec, frame: ImageSize, vocab: TokenVocab) -> ValueTables:
    """Value tables of boxes in a frame of (width, height) pixels, cached per codec and frame."""
    return _box_cached(codec, (int(frame[0]), int(frame[1])), vocab)


def pair_tables(words: Sequence[str], context: grammar.Context, vocab: TokenVocab) -> ValueTables:
    """Value tables of a sentence and a photo together (multimedia): spans of `words` and the
    context's boxes (its candidates when listed, else free boxes in its frame)."""
    if context.candidates is not None:
        boxes = ("choices", tuple(context.candidates))
    else:
        if context.codec is None or context.image_size is None:
            raise ValueError(f"task {context.task} needs codec and image_size in its context")
        boxes = ("free", context.codec, (int(context.image_size[0]), int(context.image_size[1])))
    return _pair_cached(tuple(words), boxes, vocab)


# ------------------------------------------------------------------------------ examples


@dataclasses.dataclass(frozen=True, eq=False)
class ExampleConstraint:
    """What one prompt adds to its task's grammar: start row, initial type register, values."""

    start: int
    type0: int
    values: ValueTables


def example_constraint(grammar: TaskGrammar, context: grammar.Context) -> ExampleConstraint:
    """The constraint of one example from its parse context (the same object `parse.parse`
    gets, so what is allowed is what parses)."""
    if context.task != grammar.task:
        raise ValueError(f"context of task {context.task!r} given to the {grammar.task!r} grammar")
    kind = VALUE_TASKS[grammar.task]
    if kind == "span+box":
        values = pair_tables(context.words, context, grammar.vocab)
    elif kind == "span":  # a sentence without words can only answer `none`
        values = span_tables(context.words, grammar.vocab)
    elif kind == "box" and context.candidates is not None:  # grounded: copy a listed candidate
        values = choice_tables(context.candidates, grammar.vocab)
    elif kind == "box":
        if context.codec is None or context.image_size is None:
            raise ValueError(f"task {grammar.task} needs codec and image_size in its context")
        values = box_tables(context.codec, context.image_size, grammar.vocab)
    else:
        values = _no_values(grammar.vocab)
    event_type = context.event_type
    type0 = ontology.EVENT_TYPES.index(event_type) if event_type in ontology.EVENT_TYPES else -1
    return ExampleConstraint(grammar.start(event_type), type0, values)


def value_bucket(n: int, minimum: int = 64) -> int:
    """Power-of-two size >= n (>= minimum): value tables padded to it reuse compiled loops."""
    size = minimum
    while size < n:
        size *= 2
    return size


def value_shape(constraints: Sequence[ExampleConstraint]) -> tuple[int, int]:
    """(rows, candidates) bucket that holds every example's value tables."""
    return (
        value_bucket(max(c.values.shape[0] for c in constraints)),
        value_bucket(max(c.values.shape[1] for c in constraints)),
    )


def batch_arrays(constraints: Sequence[ExampleConstraint], shape: tuple[int, int] | None = None) -> ValueArrays:
    """The per-example part of the decode loop's constraint inputs (numpy), padded to `shape`
    (default: `value_shape(constraints)`)."""
    need = value_shape(constraints)
    s_v, c_v = need if shape is None else shape
    if s_v < need[0] or c_v < need[1]:
        raise ValueError(f"value tables need at least {need}, asked to pad to {(s_v, c_v)}")
    b = len(constraints)
    nxt = np.full((b, s_v, c_v), DEAD, np.int16)
    ids = np.zeros((b, c_v), np.int32)
    dist = np.full((b, s_v), INF, np.int32)
    for i, c in enumerate(constraints):
        v = c.values
        nxt[i, v.rows, v.cols] = v.vals
        ids[i, : len(v.ids)] = v.ids
        dist[i, : len(v.dist)] = v.dist
    return ValueArrays(
        next=nxt,
        ids=ids,
        dist=dist,
        start=np.asarray([c.start for c in constraints], np.int32),
        type0=np.asarray([c.type0 for c in constraints], np.int32),
    )


def start_distance(grammar: TaskGrammar, constraint: ExampleConstraint) -> int:
    """Fewest tokens of a complete answer for this example (`none` and the end token, usually)."""
    via = grammar.tokdist[constraint.start] + constraint.values.dist[:N_ENTRIES]
    return int(min(grammar.direct[constraint.start], via.min()))


# ------------------------------------------------------------------------------ host walker


class HostAutomaton:
    """The decode loop's constraint logic in numpy, for one example: tests and debugging.

    `allowed(remaining)` -> {token id: (next global state, next register)}; `advance(token)`.
    Global states: skeleton rows 0..S-1, value rows S + r.
    """

    def __init__(self, grammar: TaskGrammar, constraint: ExampleConstraint):
        self.g, self.c = grammar, constraint
        s = grammar.num_states
        e = constraint.values.dist[:N_ENTRIES]
        dist_s = np.minimum(grammar.direct, (grammar.tokdist + e[None]).min(1))
        self.dist = np.concatenate([dist_s, constraint.values.dist]).astype(np.int64)
        self.state, self.type = constraint.start, constraint.type0
        self.s = s
        self._values = None

    def _targets(self) -> list[tuple[int, int]]:
        s, q = self.s, self.state
        if q < s:
            return [(int(t), int(n)) for t, n in zip(self.g.ids, self.g.next[q]) if n >= 0]
        out = []
        v = self.c.values
        if self._values is None:
            self._values = v.dense()
        for t, n in zip(v.ids, self._values[q - s]):
            n = int(n)
            if n >= 0:
                out.append((int(t), n + s))
            elif n == TO_LINE_START:
                out.append((int(t), int(self.g.line_start[max(self.type, 0)])))
            elif n == TO_END:
                out.append((int(t), self.g.end))
        return out

    def allowed(self, remaining: int | None = None) -> dict[int, tuple[int, int]]:
        out = {}
        for tid, nxt in self._targets():
            if remaining is not None and 1 + self.dist[nxt] > remaining:
                continue
            t = int(self.g.types[nxt]) if nxt < self.s and self.g.types[nxt] >= 0 else self.type
            out[tid] = (nxt, t)
        return out

    def advance(self, token: int, remaining: int | None = None) -> None:
        options = self.allowed(remaining)
        if token not in options:
            raise ValueError(f"token {token} ({self.g.vocab.pieces[token]!r}) not allowed in state {self.state}")
        self.state, self.type = options[token]

    @property
    def finished(self) -> bool:
        return self.state == self.g.end
