"""`gs://` served from a local folder, with no network: what the remote-path tests run on.

Two clients read a run's `gs://` paths: etils.epath (every file the package opens, lists
or writes; its fsspec backend asks `fsspec.filesystem("gcs")`) and TensorStore (the arrays
of Orbax checkpoints, through its own GCS driver). Both are pointed at one folder, so
`gs://bucket/x` is `<root>/bucket/x` for either:

- fsspec's registry maps `gs` and `gcs` to a `DirFileSystem` rooted there (fsspec's memory
  filesystem would be invisible to TensorStore);
- etils caches one filesystem per protocol (cleared before and after), and would take
  `tf.io.gfile` instead of fsspec when TensorFlow is installed (turned off);
- Orbax's TensorStore spec for a `gs://` path becomes a `file` spec under the root, and
  its bucket query (hierarchical namespace, a google-cloud-storage call) answers no.

Orbax still takes the `gs://` code paths (commit_success.txt files instead of renames).
"""

from __future__ import annotations

import contextlib
import os
import pathlib

import fsspec
import pytest
from etils.epath import backend as epath_backend
from etils.epath import gpath
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import _registry as fsspec_registry
from orbax.checkpoint._src.path import gcs_utils

PROTOCOLS = ("gs", "gcs")


def _filesystem_class(root: pathlib.Path) -> type:
    class FakeGCS(DirFileSystem):
        protocol = PROTOCOLS

        def __init__(self, *args, **kwargs):  # etils passes gcsfs options (finalize_on_close)
            # auto_mkdir: a bucket has no folders to create before writing an object
            super().__init__(path=str(root), fs=LocalFileSystem(auto_mkdir=True))

    return FakeGCS


def _tensorstore_spec(root: pathlib.Path):
    def spec(ckpt_path: str) -> dict:
        bucket, path = gcs_utils.parse_gcs_path(ckpt_path, add_trailing_slash=False)
        return {"driver": "file", "path": os.path.join(root, bucket, path)}

    return spec


@contextlib.contextmanager
def fake_gcs(root: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
    """Serves `gs://` from `root` while the block runs; everything is restored after."""
    root.mkdir(parents=True, exist_ok=True)
    cls = _filesystem_class(root)
    for name in PROTOCOLS:
        monkeypatch.setitem(fsspec_registry, name, cls)
    monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
    monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs", _tensorstore_spec(root))
    monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
    epath_backend.fsspec_backend._get_filesystem.cache_clear()
    assert isinstance(fsspec.filesystem("gs"), cls)
    try:
        yield root
    finally:
        epath_backend.fsspec_backend._get_filesystem.cache_clear()
