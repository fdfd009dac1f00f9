"""W/curves.png: one column per logged stage, drawn without a display."""

import json

import numpy as np
from PIL import Image

from rmpl_jax.train.curves import write_curves
from rmpl_jax.train.metrics_log import METRICS_FILE


def _log(stage_dir, steps, with_tokens=True):
    stage_dir.mkdir(parents=True)
    with open(stage_dir / METRICS_FILE, "w") as f:
        for s in steps:
            line = {"step": s, "loss": 6.0 * 0.9**s, "learning_rate": 1e-3 * min(1, s / 5)}
            if with_tokens:
                line["input_tokens_per_s"] = 900.0 + s
                line["padding_share"] = 0.1
            f.write(json.dumps(line) + "\n")


def test_curves_have_a_column_per_logged_stage(tmp_path):
    _log(tmp_path / "stage1", range(1, 40))
    _log(tmp_path / "stage2", range(1, 20), with_tokens=False)
    path = write_curves(str(tmp_path), ["stage1", "stage2", "stage3"])  # stage3 never ran
    assert path == str(tmp_path / "curves.png")
    two = Image.open(path).convert("RGB")
    _log(tmp_path / "only" / "stage1", range(1, 40))
    one = Image.open(write_curves(str(tmp_path / "only"), ["stage1"])).convert("RGB")
    assert two.width > 1.8 * one.width and two.height == one.height
    pixels = np.asarray(two)
    assert (pixels < 200).any(axis=-1).mean() > 0.01  # axes, labels and lines were drawn


def test_no_logged_stage_writes_no_picture(tmp_path):
    assert write_curves(str(tmp_path), ["stage1"]) is None
    assert not (tmp_path / "curves.png").exists()
