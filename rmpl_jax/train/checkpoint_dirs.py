"""Which checkpoints directory a user means: `init_from` (and predict's `checkpoint`) accept
a run directory, a stage directory or a checkpoints directory.

    W                      a run: its last stage's checkpoints (the stages in W/config.json)
    W/stage1               a stage: W/stage1/checkpoints
    W/stage1/checkpoints   itself
"""

from __future__ import annotations

import os

from rmpl_jax.io import paths
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.io.run_config import CONFIG_FILE, find_run_config

CHECKPOINTS = "checkpoints"


def has_steps(directory: str) -> bool:
    """Whether `directory` holds Orbax step directories (`0`, `100`, ...)."""
    return paths.is_dir(directory) and any(
        name.isdigit() and paths.is_dir(os.path.join(directory, name)) for name in paths.list_names(directory)
    )


def find_checkpoints(path: str, setting: str) -> str:
    """The checkpoints directory `path` names; ConfigError naming `setting` (the config key,
    e.g. `init_from`) when it names none."""
    path = paths.absolute(os.path.expanduser(path))
    hint = f"give --config.{setting} a run directory (W), a stage directory (W/stage1) or its checkpoints directory"
    if not paths.is_dir(path):
        raise ConfigError(f"--config.{setting}={path}: no such directory; {hint}")
    if has_steps(path):
        return path
    if has_steps(os.path.join(path, CHECKPOINTS)):
        return os.path.join(path, CHECKPOINTS)
    stages = [name for name in sorted(paths.list_names(path)) if has_steps(os.path.join(path, name, CHECKPOINTS))]
    if paths.is_file(os.path.join(path, CONFIG_FILE)):
        run = find_run_config(path, levels=0) or {}
        listed = [s for s in run.get("stages", ()) if isinstance(s, str)]
        if listed:
            last = os.path.join(path, listed[-1], CHECKPOINTS)
            if has_steps(last):
                return last
            raise ConfigError(
                f"--config.{setting}={path}: the run's last stage {listed[-1]!r} has no checkpoints"
                + (
                    f" (stages with checkpoints: {', '.join(stages)}; name one, e.g. {path}/{stages[-1]})"
                    if stages
                    else ""
                )
            )
    if len(stages) == 1:
        return os.path.join(path, stages[0], CHECKPOINTS)
    found = f"it has stages {', '.join(stages)}: name one" if stages else "it holds no checkpoints"
    raise ConfigError(f"--config.{setting}={path}: {found}; {hint}")
