"""Entry point: `python -m rmpl_jax.main --config configs/X.py [--config.key=value] [--workdir W]`.

Dispatches on `config.mode`; each mode is a module with `run(config, workdir)`.
"""

from __future__ import annotations

import importlib

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file")
_WORKDIR = flags.DEFINE_string("workdir", "workdir", "directory for outputs and checkpoints")

MODES = {
    "score": "rmpl_jax.modes.score",
    "train": "rmpl_jax.modes.train",
    "predict": "rmpl_jax.modes.predict",
    "report": "rmpl_jax.modes.report",
}


def main(argv: list[str]) -> None:
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config is required, e.g. --config configs/score_m2e2.py")
    if config.mode not in MODES:
        raise app.UsageError(f"config.mode={config.mode!r}; known modes: {sorted(MODES)}")
    importlib.import_module(MODES[config.mode]).run(config, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
