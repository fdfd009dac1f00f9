"""Errors a user fixes: bad input, a config or path mistake, a run that had to stop.

`main` prints such an error's message as one line and exits non-zero (the traceback only
with `--verbosity=1`), so every message says where the problem is and how to fix it.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in the input, the config or the environment, not in the code."""


class ConfigError(UserError, ValueError):
    """A config setting that cannot work; the message names the `--config.` key."""
