"""Shared fixtures. Real data lives in ../shared/data (or $RMPL_SHARED_DATA); tests that
need it skip with a reason when it is absent, unless RMPL_REQUIRE_DATA=1 (set by CI)
turns the skip into a failure."""

from __future__ import annotations

import os
import pathlib

import pytest

from rmpl_jax.io.shared_data import find_shared_data

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    path = find_shared_data()
    if path is None:
        reason = "shared data not found: set RMPL_SHARED_DATA or place it at ../shared/data"
        if os.environ.get("RMPL_REQUIRE_DATA") == "1":
            pytest.fail(reason + " (RMPL_REQUIRE_DATA=1)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def m2e2_dir(shared_data_dir) -> pathlib.Path:
    return shared_data_dir / "m2e2"
