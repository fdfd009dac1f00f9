"""A fixed share of items chosen by a hash of their key: the same items in every run and
process, whatever the order they are read in."""

from __future__ import annotations

import hashlib


def in_share(key: str, share: float) -> bool:
    """Whether `key` falls in the first `share` of the hash space (always when share >= 1)."""
    if share >= 1.0:
        return True
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
