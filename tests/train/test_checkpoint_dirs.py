"""`init_from` / predict's `checkpoint` accept a run, a stage or a checkpoints directory."""

import json

import pytest

from rmpl_jax.io.errors import ConfigError
from rmpl_jax.train.checkpoint_dirs import find_checkpoints


def _run(root, stages=("stage1", "stage2"), with_steps=("stage1", "stage2")):
    root.mkdir(exist_ok=True)
    (root / "config.json").write_text(json.dumps({"mode": "train", "stages": list(stages)}))
    for stage in with_steps:
        (root / stage / "checkpoints" / "100").mkdir(parents=True)
    return root


def test_run_stage_and_checkpoints_dirs(tmp_path):
    run = _run(tmp_path / "W")
    last = str(run / "stage2" / "checkpoints")
    assert find_checkpoints(str(run), "init_from") == last
    assert find_checkpoints(str(run / "stage1"), "init_from") == str(run / "stage1" / "checkpoints")
    assert find_checkpoints(last, "init_from") == last


def test_unusable_directories_are_named(tmp_path):
    with pytest.raises(
        ConfigError, match=r"--config.init_from=.*nope: no such directory; give --config.init_from a run"
    ):
        find_checkpoints(str(tmp_path / "nope"), "init_from")
    run = _run(tmp_path / "W", with_steps=("stage1",))
    with pytest.raises(ConfigError, match=r"last stage 'stage2' has no checkpoints .*name one, e.g. .*W/stage1"):
        find_checkpoints(str(run), "checkpoint")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="it holds no checkpoints"):
        find_checkpoints(str(tmp_path / "empty"), "init_from")
    for stage in ("a", "b"):  # no run config: more than one stage is ambiguous
        (tmp_path / "X" / stage / "checkpoints" / "5").mkdir(parents=True)
    with pytest.raises(ConfigError, match="it has stages a, b: name one"):
        find_checkpoints(str(tmp_path / "X"), "init_from")
