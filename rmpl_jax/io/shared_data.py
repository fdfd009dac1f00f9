"""Where the shared data lives when a config leaves a path empty."""

from __future__ import annotations

import os
import pathlib

_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def find_shared_data() -> pathlib.Path | None:
    """$RMPL_SHARED_DATA, else `shared/data` beside the repository or the working
    directory's parent, else None."""
    env = os.environ.get("RMPL_SHARED_DATA")
    candidates = [pathlib.Path(env)] if env else []
    candidates += [_REPO_ROOT.parent / "shared" / "data", pathlib.Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if (path / "m2e2").is_dir():
            return path
    return None


def shared_data_path(*parts: str) -> str:
    """A path under the shared data directory; raises FileNotFoundError naming the fix."""
    root = find_shared_data()
    if root is None:
        raise FileNotFoundError(
            "shared data not found: set RMPL_SHARED_DATA to the directory "
            "holding m2e2/ and imsitu/, or pass the path in the config"
        )
    return str(root.joinpath(*parts))
