"""The token automaton on the host (no model): training targets are accepted in their canonical
tokenization, random walks always parse with zero failures and finish within their budget,
copied spans map to the right offsets, and what the grammar forbids is rejected."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmpl_jax.infer import constrained as C
from rmpl_jax.infer.automata import K_MAX
from rmpl_jax.m2e2 import grammar, ontology, parse, render
from rmpl_jax.m2e2.records import Box, Span
from rmpl_jax.models.llava.boxes import LlavaBoxes
from rmpl_jax.models.qwen2_vl.boxes import Qwen2VLBoxes, Qwen25VLBoxes
from rmpl_jax.models.qwen2_vl.processor import END_OF_TURN
from tests.testing.automaton_walk import bytes_accepted, host_automaton, random_walk
from tests.testing.codecs import CODECS
from tests.testing.decode_models import demo_dir, synthetic
from tests.testing.tiny_tokenizer import make_tiny_tokenizer

WORDS = ("Police", "arrested", "the", "suspect", "after", "the", "suspect", "fled", "Kabul", ".")
ALL_TASKS = ("text_ee", "text_mention", "text_argument", "visual_ee", "image_mention", "image_argument", "mnre")


@pytest.fixture(scope="module")
def tiny_tok():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def demo_tok(tmp_path_factory):
    from transformers import AutoTokenizer

    hf_dir, _ = demo_dir(str(tmp_path_factory.mktemp("demo")))
    return AutoTokenizer.from_pretrained(str(hf_dir))


@pytest.fixture(scope="module", params=["tiny", "demo"])
def tok(request, tiny_tok, demo_tok):
    return tiny_tok if request.param == "tiny" else demo_tok


def _accepts(tokenizer, context, text) -> bool:
    """Canonical tokenization of text + end-of-turn, walked with the exact budget."""
    ids = tokenizer(text + END_OF_TURN, add_special_tokens=False)["input_ids"]
    h = host_automaton(tokenizer, context)
    try:
        for i, t in enumerate(ids):
            h.advance(t, remaining=len(ids) - i)
    except ValueError:
        return False
    return h.finished


def _examples(split):
    for s in split.sentences:
        for task in ("text_ee", "text_mention", "text_argument"):
            yield from render.render(task, s)
    for item in split.images:
        size = split.image_sizes[item.image_id]
        for codec in CODECS.values():
            yield from render.render("visual_ee", item, image_size=size, codec=codec)
            yield from render.render("image_argument", item, image_size=size, codec=codec)
        yield from render.render("image_mention", item)


def test_training_targets_are_accepted(tok, tmp_path):
    split = synthetic(str(tmp_path / "syn"), docs=5, seed=3)
    examples = list(_examples(split))
    assert len({e.task for e in examples}) == 6
    rejected = [(e.task, e.target) for e in examples if not _accepts(tok, e.context, e.target)]
    assert not rejected, rejected[:3]


def test_m2e2_targets_are_accepted(tiny_tok, m2e2_dir):
    from rmpl_jax.data.m2e2 import read_m2e2

    corpus = read_m2e2(str(m2e2_dir))
    sentences = [s for s in corpus.sentences.values() if s.events][:150]
    rejected = []
    for s in sentences:
        ex = render.render_text_ee(s)
        if not _accepts(tiny_tok, ex.context, ex.target):
            rejected.append(ex.target)
    print(f"{len(sentences)} M2E2 text_ee targets, {len(rejected)} rejected")
    assert not rejected, rejected[:2]


def _context(task, words, rng):
    codec = rng.choice(list(CODECS.values()))
    size = (rng.randint(20, 900), rng.randint(20, 900))
    event_type = rng.choice(ontology.EVENT_TYPES)
    if task in ("visual_ee", "image_argument"):
        return grammar.Context(task, image_size=size, codec=codec, event_type=event_type)
    return grammar.Context(task, words=words, event_type=event_type, trigger=Span(0, 1))


_word = st.text(alphabet=st.sampled_from("ab é.@#:-1"), min_size=1, max_size=4).map(lambda w: w.replace(" ", "") or "x")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(_word, min_size=1, max_size=12), seed=st.integers(0, 2**31), task=st.sampled_from(ALL_TASKS))
def test_random_walks_always_parse(tiny_tok, words, seed, task):
    rng = random.Random(seed)
    context = _context(task, tuple(words), rng)
    h = host_automaton(tiny_tok, context)
    budget = rng.randint(C.start_distance(h.g, h.c), 70)
    ids = random_walk(h, rng, budget)
    text = C.vocab_for(tiny_tok, END_OF_TURN).text(ids)
    parsed = parse.parse(text, context)
    assert parsed.failures == 0, (text, parsed.errors)
    if task in ("text_ee", "text_mention"):
        for e in parsed.events:  # every copied span is words of the sentence at its offsets
            assert e.trigger.text == " ".join(words[e.trigger.start : e.trigger.end])


def test_random_walks_demo_tokenizer(demo_tok):
    rng = random.Random(0)
    split_words = [WORDS, ("the", "the", "the", "the", "of", "the"), ("$", "5", "million", "$", "5")]
    for n in range(150):
        task = ALL_TASKS[n % len(ALL_TASKS)]
        context = _context(task, split_words[n % 3], rng)
        h = host_automaton(demo_tok, context)
        ids = random_walk(h, rng, rng.randint(C.start_distance(h.g, h.c), 60))
        text = C.vocab_for(demo_tok, END_OF_TURN).text(ids)
        assert parse.parse(text, context).failures == 0, text


def test_span_copies_map_to_offsets(tiny_tok):
    ctx = grammar.Context("text_ee", words=WORDS)
    text = "event: Movement:Transport\ntrigger: fled\nArtifact@2: the suspect\nOrigin: Kabul .\nAgent: Police"
    assert _accepts(tiny_tok, ctx, text)
    (event,) = parse.parse(text, ctx).events
    assert event.trigger == Span(7, 8, "fled")
    assert [(a.role, a.span.start, a.span.end) for a in event.arguments] == [
        ("Artifact", 5, 7),
        ("Origin", 8, 10),
        ("Agent", 0, 1),
    ]
    head = "event: Movement:Transport\ntrigger: fled\n"
    assert bytes_accepted(tiny_tok, ctx, head + "Artifact: the suspect")  # first occurrence
    assert not bytes_accepted(tiny_tok, ctx, head + "Artifact@3: the suspect")  # only two
    assert not bytes_accepted(tiny_tok, ctx, head + "Artifact@1: the suspect")  # renderer never writes @1
    assert not bytes_accepted(tiny_tok, ctx, head + "Artifact: he suspect")  # not word aligned
    assert not bytes_accepted(tiny_tok, ctx, head + "Artifact: the suspec")
    assert not bytes_accepted(tiny_tok, ctx, head + "Artifact: Kabul  .")
    assert bytes_accepted(tiny_tok, ctx, head + "Artifact: suspect after the")


@pytest.mark.parametrize(
    "text, ok",
    [
        ("none", True),
        ("none\nevent: Life:Die\ntrigger: fled", False),  # none among other lines
        ("event: Life:Die\ntrigger: fled\nVictim: Police", True),
        ("event: Life:Die\ntrigger: fled\nAttacker: Police", False),  # not a Life:Die role
        ("event: Life:Die\nVictim: Police", False),  # trigger line first
        ("event: Life:Dies\ntrigger: fled", False),
        ("event: Life:Die\ntrigger: fled\n", False),  # trailing newline: an unfinished line
        ("event: Life:Die\ntrigger: fled\nevent: Conflict:Attack\ntrigger: arrested\nTarget: Kabul", True),
    ],
)
def test_text_grammar(tiny_tok, text, ok):
    assert bytes_accepted(tiny_tok, grammar.Context("text_ee", words=WORDS), text) == ok


@pytest.mark.parametrize(
    "codec, size, box, ok",
    [
        (Qwen2VLBoxes(), (640, 480), "[0, 0, 1000, 1000]", True),
        (Qwen2VLBoxes(), (640, 480), "[0, 0, 1001, 1000]", False),
        (Qwen2VLBoxes(), (640, 480), "[00, 0, 10, 10]", False),  # the codec writes no leading zero
        (Qwen2VLBoxes(), (640, 480), "[1,2,3,4]", False),
        (Qwen25VLBoxes(), (640, 480), "[0, 0, 644, 476]", True),  # smart_resize: 644 x 476
        (Qwen25VLBoxes(), (640, 480), "[0, 0, 644, 477]", False),
        (LlavaBoxes(), (100, 300), "[0.33, 0.00, 0.67, 1.00]", True),
        (LlavaBoxes(), (100, 300), "[0.30, 0.00, 0.67, 1.00]", False),  # padding is outside
        (LlavaBoxes(), (100, 300), "[0.5, 0.00, 0.67, 1.00]", False),  # two decimals
    ],
)
def test_box_grammar(tiny_tok, codec, size, box, ok):
    ctx = grammar.Context("visual_ee", image_size=size, codec=codec)
    assert bytes_accepted(tiny_tok, ctx, f"event: Conflict:Attack\nAttacker: {box}") == ok


def test_codec_written_boxes_are_accepted(tiny_tok):
    rng = np.random.default_rng(0)
    for codec in CODECS.values():
        for size in [(640, 480), (37, 901), (1280, 720)]:
            ctx = grammar.Context("image_argument", image_size=size, codec=codec, event_type="Life:Die")
            for _ in range(10):
                x = np.sort(rng.uniform(-20, size[0] + 20, 2))
                y = np.sort(rng.uniform(-20, size[1] + 20, 2))
                codes = codec.encode(Box(x[0], y[0], x[1], y[1]), size)
                assert bytes_accepted(tiny_tok, ctx, f"Victim: {codec.format(codes)}"), (codec.name, size, codes)


def test_occurrence_index_limit(tiny_tok):
    words = ("the",) * (K_MAX + 3)
    ctx = grammar.Context("text_mention", words=words)
    assert bytes_accepted(tiny_tok, ctx, f"event: Life:Die\ntrigger@{K_MAX}: the")
    assert not bytes_accepted(tiny_tok, ctx, f"event: Life:Die\ntrigger@{K_MAX + 1}: the")
    # @k needs k occurrences of the whole copied text, not of its first word
    assert bytes_accepted(tiny_tok, ctx, f"event: Life:Die\ntrigger@{K_MAX}: the the the")
    assert not bytes_accepted(tiny_tok, ctx, f"event: Life:Die\ntrigger@{K_MAX + 2}: the the")


def test_budget_forces_the_end(tiny_tok):
    ctx = grammar.Context("text_ee", words=WORDS)
    h = host_automaton(tiny_tok, ctx)
    need = C.start_distance(h.g, h.c)
    assert set(h.allowed(need)) < set(h.allowed(need + 60))  # a tight budget leaves only `none`
    assert h.allowed(need - 1) == {}


def test_vocab_text_is_byte_exact(tiny_tok):
    vocab = C.vocab_for(tiny_tok, END_OF_TURN)
    text = "Kabul . é ü 中"
    ids = tiny_tok(text + END_OF_TURN + "tail", add_special_tokens=False)["input_ids"]
    assert vocab.text(ids) == text
    sp = C.TokenVocab.from_pieces([None, b" the", b"\n", b"x"], eos_id=0)
    assert sp.has_prefix(b" t") and not sp.has_prefix(b"y") and sp.text([1, 2, 3, 0, 1]) == " the\nx"
    assert C._sentencepiece_bytes("<0x0A>") == b"\n" and C._sentencepiece_bytes("\u2581the") == b" the"


def test_empty_sentence_answers_none(tiny_tok):
    ctx = grammar.Context("text_ee", words=())
    h = host_automaton(tiny_tok, ctx)
    text = C.vocab_for(tiny_tok, END_OF_TURN).text(random_walk(h, random.Random(0), 50))
    assert text == "none"


def test_bad_contexts_are_reported(tiny_tok):
    vocab = C.vocab_for(tiny_tok, END_OF_TURN)
    with pytest.raises(ValueError, match="given event type"):
        C.example_constraint(C.task_grammar("text_argument", vocab), grammar.Context("text_argument", words=WORDS))
    with pytest.raises(ValueError, match="codec and image_size"):
        C.example_constraint(C.task_grammar("visual_ee", vocab), grammar.Context("visual_ee"))
    with pytest.raises(ValueError, match="grammar"):
        C.example_constraint(C.task_grammar("visual_ee", vocab), grammar.Context("text_ee", words=WORDS))
    with pytest.raises(ValueError, match="unknown task"):
        C.task_grammar("bogus", vocab)


def test_byte_level_vocab_without_every_byte_token():
    """A byte-level BPE vocabulary that lacks the unused bytes (SmolLM2's has 235 of 256) is
    still read as byte-level: 'Ġ' is a space, so answers can hold one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(["<|im_end|>", "Ġ", "Ċ", ":", *letters, "Ġnone", "Ġevent"])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>")
    vocab_ = C.TokenVocab.from_tokenizer(tok, "<|im_end|>")
    assert vocab_.pieces[vocab["Ġevent"]] == b" event" and vocab_.pieces[vocab["Ċ"]] == b"\n"
    ids = [vocab[t] for t in ("e", "v", "e", "n", "t", ":", "Ġnone", "Ċ", "<|im_end|>")]
    assert vocab_.text(ids) == "event: none\n"


def test_no_event_rows_are_the_none_answer_of_event_tasks(tok):
    """The rows `no_event_penalty` is charged on: inside `none` of the event-block tasks only."""
    vocab = C.vocab_for(tok, END_OF_TURN)
    for task in ("text_ee", "text_mention", "visual_ee", "image_mention"):
        g = C.task_grammar(task, vocab)
        start = g.start()
        assert not g.no_event[start]
        none_ids = tok("none", add_special_tokens=False)["input_ids"]
        row = start
        for tid in none_ids:  # the canonical tokens of `none` walk inside the marked rows
            row = int(g.next[row, list(g.ids).index(tid)])
            assert g.no_event[row]
        event_id = tok("event", add_special_tokens=False)["input_ids"][0]
        assert not g.no_event[int(g.next[start, list(g.ids).index(event_id)])]
    for task in ("text_argument", "image_argument", "mnre"):
        assert not C.task_grammar(task, vocab).no_event.any()


def test_the_unknown_token_may_end_answers():
    """Qwen2 tokenizers name '<|endoftext|>' both eos and unknown: a family whose answers end
    with the eos (LLaVA's default template) decodes with it; a token the vocabulary lacks is refused."""
    tokenizer = make_tiny_tokenizer()
    assert tokenizer.unk_token == tokenizer.eos_token == "<|endoftext|>"
    assert C.TokenVocab.from_tokenizer(tokenizer, "<|endoftext|>").eos_id == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="no '<nope>' token"):
        C.TokenVocab.from_tokenizer(tokenizer, "<nope>")


def _sentencepiece_tokenizer():
    """A Gemma-style tokenizer: SentencePiece pieces ('▁' for a space, byte fallback through
    `<0xNN>`), a 262k-like vocabulary holding every GPT-2 byte character as a piece, newlines
    as user-defined added tokens, `<end_of_turn>` special."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    chars = sorted(set(C._gpt2_byte_decoder()) | set("▁abcdefghijklmnopqrstuvwxyzACDJLP:-[]0123456789"))
    words = ["▁the", "▁fired", "Conflict", "Attack", "▁none", "none", "Life", "Die"]
    vocab = {t: i for i, t in enumerate(["<pad>", "<end_of_turn>", *byte_pieces, *chars, *words])}
    merges = [("▁", "t"), ("▁t", "h"), ("▁th", "e")]
    for t in ("the", "he"):
        vocab.setdefault(t, len(vocab))
    vocab.setdefault("▁t", len(vocab))
    vocab.setdefault("▁th", len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, ignore_merges=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<end_of_turn>", pad_token="<pad>")
    tok.add_tokens([AddedToken("\n", special=False, normalized=False)])
    tok.add_special_tokens({"additional_special_tokens": ["<end_of_turn>"]})
    return tok


def test_sentencepiece_vocab_with_newline_tokens():
    """A SentencePiece vocabulary is not read as byte-level even when it holds every GPT-2
    byte character, and a user-defined added token (Gemma's newline) keeps its text: the
    model's own tokenization of a target is then accepted by the grammar."""
    tok = _sentencepiece_tokenizer()
    assert not C._is_byte_level(tok, C._gpt2_byte_decoder())
    vocab = C.TokenVocab.from_tokenizer(tok, "<end_of_turn>")
    newline = tok.convert_tokens_to_ids("\n")
    assert vocab.pieces[newline] == b"\n" and vocab.pieces[tok.convert_tokens_to_ids("<end_of_turn>")] is None
    text = "Conflict:Attack the fired\nLife:Die none\n"
    ids = tok(text + "<end_of_turn>", add_special_tokens=False)["input_ids"]
    assert newline in ids and vocab.text(ids) == text
    words = ("the", "police", "fired", ".")
    context = grammar.Context("text_ee", words=words)
    target = "event: Conflict:Attack\ntrigger: fired"  # as render writes it: lines joined by newlines
    ids = tok(target + "<end_of_turn>", add_special_tokens=False)["input_ids"]
    h = host_automaton(tok, context, end_of_turn="<end_of_turn>")
    for i, t in enumerate(ids):
        h.advance(t, remaining=len(ids) - i)
    assert h.finished
