"""Examples longer than the largest length bucket, found before training starts.

Training pads every batch to a configured bucket, so an example beyond the largest one
cannot be batched. Its length is measured when the stage's tasks are built (prompt and
target tokens, `Featurizer.token_lengths`): strict runs stop there with the task, count
and longest example named; lenient runs leave such examples out and count them.
"""

from __future__ import annotations

from collections.abc import Sequence

from rmpl_jax.io.read_report import DataError
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2.grammar import Example


def drop_too_long(
    task: str,
    examples: Sequence[Example],
    lengths: Sequence[int],
    max_tokens: int,
    *,
    lenient: bool,
    skips: SkipRegistry,
) -> list[Example]:
    """The examples of at most `max_tokens` tokens; the others raise DataError (strict) or
    are counted in `skips` (lenient)."""
    too_long = [(ex, int(n)) for ex, n in zip(examples, lengths) if n > max_tokens]
    if not too_long:
        return list(examples)
    if not lenient:
        ex, n = max(too_long, key=lambda pair: pair[1])
        raise DataError(
            f"task {task}: {len(too_long)} of {len(examples)} examples are longer than the largest "
            f"bucket ({max_tokens} tokens), the longest {ex.item_id} with {n} tokens; raise "
            "--config.data.buckets, or set --config.data.lenient=True to skip them"
        )
    for ex, n in too_long:
        skips.add(f"{task}: longer than the largest bucket ({max_tokens} tokens)", f"{ex.item_id} ({n} tokens)")
    return [ex for ex, n in zip(examples, lengths) if n <= max_tokens]
