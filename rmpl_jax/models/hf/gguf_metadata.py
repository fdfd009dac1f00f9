"""A GGUF file's key/value metadata, read with errors that name the file and the key, and the
one error type of the GGUF import (`GGUFError`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gguf import GGUFReader


class GGUFError(ValueError):
    """A GGUF file this converter cannot turn into an HF directory (names file and key)."""


class Metadata:
    """Typed access to a GGUF file's key/value fields, errors naming the file and the key."""

    def __init__(self, reader: GGUFReader, path: Path):
        self.fields, self.path = reader.fields, path

    def get(self, key: str, default: Any = KeyError) -> Any:
        field = self.fields.get(key)
        if field is None:
            if default is KeyError:
                raise GGUFError(f"{self.path}: metadata key {key!r} missing")
            return default
        return field.contents()

    def error(self, key: str, why: str) -> GGUFError:
        """The error for a key whose value (or presence) this converter cannot honour."""
        return GGUFError(f"{self.path}: {key} {why}")

    def check_known(self, prefix: str, known: Iterable[str]) -> None:
        """Refuses any key under `prefix` outside `known` (names without the prefix): a key
        we do not understand may change the model, so converting past it could be silently wrong."""
        known = set(known)
        for key in self.fields:
            if key.startswith(prefix) and key[len(prefix) :] not in known:
                raise self.error(key, "is not a key this converter understands (unsupported)")
