"""Entry point: `python -m rmpl_jax.main --config configs/X.py [--config.key=value] [--workdir W]`.

Dispatches on `config.mode`; each mode is a module with `run(config, workdir)`. A user
mistake (bad data, a config or path error, a flag naming no config key) ends the run with
one line on stderr saying what is wrong and a non-zero exit status; `--verbosity=1` shows
the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from rmpl_jax.infer.settings import renamed_flags
from rmpl_jax.io.errors import UserError
from rmpl_jax.train.preemption import EXIT_STATUS as PREEMPTED_STATUS
from rmpl_jax.train.preemption import Preempted

_CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file")
_WORKDIR = flags.DEFINE_string("workdir", "workdir", "directory for outputs and checkpoints")

MODES = {
    "score": "rmpl_jax.modes.score",
    "train": "rmpl_jax.modes.train",
    "predict": "rmpl_jax.modes.predict",
    "report": "rmpl_jax.modes.report",
}
# OSErrors that mean a wrong path or permission, not a bug.
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
USAGE_STATUS = 2  # a command line that names no config, no file or no key


def _verbose(argv: list[str]) -> bool:
    """--verbosity=1 (or more, or -v 1) asks for tracebacks; read before flags are parsed."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith(("--verbosity=", "--v=")) else None
        if arg in ("--verbosity", "-v") and i + 1 < len(argv):
            value = argv[i + 1]
        if value is not None and value.lstrip("-").isdigit() and int(value) >= 1:
            return True
    return False


def _one_line(error: BaseException) -> str:
    """The innermost message of `error` (config_flags wraps a KeyError in an AttributeError),
    on one line."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(text).split()) or type(error).__name__


def fail(message: str, status: int = 1) -> None:
    """Prints `error: message` as one line and exits with `status`."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, with a bad config file, override or value reported in one line (a
    renamed key, e.g. --config.eval.max_new_tokens, with its new name)."""
    try:
        return flags.FLAGS(argv)
    except Exception as e:  # config_flags raises KeyError/AttributeError/OSError/flags.Error
        if _verbose(argv):
            raise
        renamed = "".join(f"{hint}; " for hint in renamed_flags(argv))
        fail(
            f"{_one_line(e)} ({renamed}--config.KEY=VALUE must name a key of the config; --helpfull lists the flags)",
            USAGE_STATUS,
        )


def main(argv: list[str]) -> None:
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
    verbose = flags.FLAGS["verbosity"].value >= 1
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config is required, e.g. --config configs/score_m2e2.py")
    try:
        mode = config.mode  # a config file that failed to load raises on first use
    except OSError as e:
        if verbose:
            raise
        fail(f"{_one_line(e)} (--config takes a config file, e.g. configs/stage1.py)", USAGE_STATUS)
    if mode not in MODES:
        raise app.UsageError(f"config.mode={config.mode!r}; known modes: {sorted(MODES)}")
    try:
        importlib.import_module(MODES[mode]).run(config, _WORKDIR.value)
    except Preempted as e:
        print(str(e), file=sys.stderr, flush=True)
        sys.exit(PREEMPTED_STATUS)
    except (UserError, *PATH_ERRORS) as e:
        if verbose:
            raise
        hint = "" if isinstance(e, UserError) else " (check the paths in the config)"
        fail(_one_line(e) + hint)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
