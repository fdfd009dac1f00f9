"""Length buckets: sequences are padded to one of a few lengths, so jitted functions see a
few static shapes instead of one per length."""

from __future__ import annotations

from collections.abc import Sequence


def bucket_length(length: int, buckets: Sequence[int], overflow_multiple: int | None = None) -> int:
    """The smallest bucket that holds `length` tokens.

    Beyond the largest bucket: a multiple of `overflow_multiple` when given (decoding takes any
    prompt), else ValueError (training shapes are fixed by the config).
    """
    for bucket in sorted(buckets):
        if length <= bucket:
            return int(bucket)
    if overflow_multiple:
        return int(-(-length // overflow_multiple) * overflow_multiple)
    raise ValueError(
        f"example of {length} tokens is longer than the largest bucket "
        f"{max(buckets)}; raise data.buckets or shorten the input"
    )
