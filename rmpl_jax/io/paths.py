"""Paths of a run's inputs and outputs: local paths or URLs (`gs://bucket/x`).

Config strings become `etils.epath.Path` here, so data, photos, checkpoints and every file a
run writes can live in a bucket (a TPU VM job needs no mounted bucket). A local path behaves
as a plain file path did before; purely local things (temporary folders, the package's own
files, model directories) keep `os` and `pathlib`.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from collections.abc import Callable

from etils import epath

PathLike = str | os.PathLike


def is_remote(path: PathLike) -> bool:
    """Whether `path` is a URL (`scheme://...`) rather than a local path."""
    return "://" in os.fspath(path)


def as_path(path: PathLike) -> epath.Path:
    """The path as an `epath.Path` (a local path stays a local one)."""
    return epath.Path(path)


def absolute(path: PathLike) -> str:
    """A local path made absolute; a URL as it is."""
    path = os.fspath(path)
    return path if is_remote(path) else os.path.abspath(path)


def parent(path: PathLike) -> str | None:
    """The folder holding `path` (made absolute first); None at a root (`/`, a bucket)."""
    path = absolute(path).rstrip("/") or "/"
    if is_remote(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{rest.rsplit('/', 1)[0]}" if "/" in rest else None
    up = os.path.dirname(path)
    return None if up == path else up


def exists(path: PathLike) -> bool:
    """Whether a file or folder is at `path`."""
    return as_path(path).exists()


def is_file(path: PathLike) -> bool:
    """Whether a file (not a folder) is at `path`."""
    return as_path(path).is_file()


def is_dir(path: PathLike) -> bool:
    """Whether a folder is at `path` (in a bucket: objects under that prefix)."""
    return as_path(path).is_dir()


def list_names(directory: PathLike) -> list[str]:
    """Names of the entries of `directory` (files and folders), unsorted."""
    return [p.name for p in as_path(directory).iterdir()]


def make_dirs(path: PathLike) -> None:
    """Creates the folder and its parents (a no-op where it exists, and in a bucket)."""
    as_path(path).mkdir(parents=True, exist_ok=True)


def _make_parent(path: PathLike) -> None:
    """Creates the folder `path` is written into (where it has one)."""
    folder = parent(path)
    if folder is not None:
        make_dirs(folder)


def write_bytes(path: PathLike, data: bytes) -> str:
    """Writes `data` to `path`, creating its folder; returns the path as a string."""
    _make_parent(path)
    as_path(path).write_bytes(data)
    return os.fspath(path)


def write_text(path: PathLike, text: str) -> str:
    """Writes `text` as UTF-8 (whatever the locale says), creating the folder."""
    return write_bytes(path, text.encode("utf-8"))


def read_bytes(path: PathLike) -> bytes:
    """The file's bytes (FileNotFoundError, as `open`, when there is none)."""
    return as_path(path).read_bytes()


def copy_file(source: PathLike, target: PathLike) -> None:
    """Copies one file between any two places (local or remote), replacing `target`;
    creates the target's folder."""
    _make_parent(target)
    as_path(source).copy(as_path(target), overwrite=True)


def file_lookup(directory: PathLike) -> Callable[[str], str | None]:
    """`find(name)`: the path of file `name` in `directory`, or None when there is none.

    A local folder is asked per file, as before; a remote one is listed once, so a reader
    with a hundred thousand photos makes one listing, not a request per photo (names with
    a `/` are still asked one by one)."""
    directory = os.fspath(directory)
    names = set(list_names(directory)) if is_remote(directory) and is_dir(directory) else None

    def find(name: str) -> str | None:
        path = os.path.join(directory, name)
        if names is None:
            return path if os.path.isfile(path) else None
        if "/" in name:
            return path if is_file(path) else None
        return path if name in names else None

    return find


def local_dir_for(workdir: PathLike) -> str:
    """Where a run writes files it needs as local files (the synthetic photos, the demo
    model) when `workdir` is remote: a folder named after the URL in the system's temporary
    folder, so a rerun on the same machine finds them again. A local workdir is itself."""
    workdir = os.fspath(workdir)
    if not is_remote(workdir):
        return workdir
    return os.path.join(tempfile.gettempdir(), "rmpl_jax", urllib.parse.quote(workdir, safe=""))
