"""The host-side constraint walker of a task, a byte-by-byte acceptance check and random
walks, for the constrained-decoding tests."""

from __future__ import annotations

from rmpl_jax.infer import constrained as C
from rmpl_jax.m2e2 import grammar
from rmpl_jax.models.qwen2_vl.processor import END_OF_TURN


def host_automaton(tokenizer, context: grammar.Context, end_of_turn: str = END_OF_TURN) -> C.HostAutomaton:
    """The constraint of one example (`context.task`'s grammar) as a numpy walker."""
    vocab = C.vocab_for(tokenizer, end_of_turn)
    task_grammar = C.task_grammar(context.task, vocab)
    return C.HostAutomaton(task_grammar, C.example_constraint(task_grammar, context))


def bytes_accepted(tokenizer, context: grammar.Context, text: str) -> bool:
    """Walks text byte by byte (single-byte tokens), then the end-of-turn token: since tokens
    are walked byte by byte through the same automaton, a rejection here means no
    tokenization is accepted."""
    vocab = C.vocab_for(tokenizer, END_OF_TURN)
    h = host_automaton(tokenizer, context)
    try:
        for b in text.encode("utf-8"):
            h.advance(vocab.ids_of[bytes([b])][0])
        h.advance(vocab.eos_id)
    except (ValueError, KeyError):
        return False
    return h.finished


def random_walk(h: C.HostAutomaton, rng, budget: int) -> list[int]:
    """Token ids of one walk that picks uniformly among the allowed tokens at every step, with
    `budget` tokens left to the end token; fails if a state allows nothing or the budget runs
    out before the automaton finishes."""
    out = []
    for i in range(budget):
        options = h.allowed(budget - i)
        assert options, f"stuck in state {h.state} after {out}"
        token = rng.choice(sorted(options))
        h.advance(token, budget - i)
        out.append(token)
        if h.finished:
            return out
    raise AssertionError("the budget ran out before the end token")
