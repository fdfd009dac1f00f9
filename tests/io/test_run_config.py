"""The training run's config is found from a checkpoint, a stage, the run, or an export."""

from __future__ import annotations

import json

from configs import stage1
from rmpl_jax.io.run_config import EXPORT_FILE, find_run_config, write_run_config


def test_written_config_is_found_from_every_place_of_the_run(tmp_path):
    config = stage1.get_config()
    config.data.image_side = 56
    write_run_config(str(tmp_path), config)
    ckpt = tmp_path / "stage2" / "checkpoints"
    ckpt.mkdir(parents=True)
    for place in (ckpt, ckpt.parent, tmp_path):
        found = find_run_config(str(place))
        assert found["data"]["image_side"] == 56 and found["mode"] == "train"
    assert find_run_config(str(tmp_path.parent / "elsewhere")) is None


def test_an_hf_config_is_not_a_run_config_but_an_export_copy_is(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    assert find_run_config(str(tmp_path), levels=0) is None
    (tmp_path / EXPORT_FILE).write_text(json.dumps({"mode": "train", "data": {"image_side": 112}}))
    assert find_run_config(str(tmp_path), levels=0)["data"]["image_side"] == 112
