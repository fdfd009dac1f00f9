"""What runs take from the family: a text-only model leaves the image tasks out and says which
(MNRE trains on its text); `lora_targets=""` is the family's default."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from configs import stage1
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.models.family import get_family
from rmpl_jax.train.model_setup import drop_image_tasks, family_and_config, lora_targets, mesh_shape, model_options
from tests.testing.hf_tiny import tiny_config_dict
from tests.testing.hf_tiny_llama import make_tiny_llama


def test_a_text_only_model_leaves_the_image_tasks_out(tmp_path):
    hf_dir, _ = make_tiny_llama(tmp_path, "gqa")
    family, model_config = family_and_config(str(hf_dir))
    config = stage1.get_config()
    config.model.hf_dir = str(hf_dir)
    config.stage2.tasks.multimedia = 0.2
    config.data.mnre_images = "mnre/images"
    notes = drop_image_tasks(config, family, model_config)
    assert notes == [
        "stage1: task visual_ee: the text-only llama model takes no photos, left out",
        "stage1: task mnre: the text-only llama model takes no photos, trained on its text",
        "stage2: task image_argument: the text-only llama model takes no photos, left out",
        "stage2: task image_mention: the text-only llama model takes no photos, left out",
        "stage2: task multimedia: the text-only llama model takes no photos, left out",
    ]
    assert config.stage1.tasks.visual_ee == 0 and config.stage2.tasks.image_argument == 0
    assert config.stage1.tasks.text_ee == 1.0 and config.stage1.tasks.mnre == 0.5 and config.data.mnre_images == ""
    assert drop_image_tasks(config, family, model_config) == []  # nothing left to drop


def test_a_vision_model_keeps_its_tasks(tmp_path):
    config = stage1.get_config()
    family = get_family("qwen2_5_vl")
    model_config = family.config_from_hf(tiny_config_dict("qwen2_5_vl") | {"model_type": "qwen2_5_vl"})
    assert drop_image_tasks(config, family, model_config) == []
    assert config.stage1.tasks.visual_ee == 2.0


def test_lora_targets_default_to_the_family():
    family = get_family("llama")
    assert lora_targets("", family) == family.default_lora_targets
    assert lora_targets(r"q_proj$", family) == r"q_proj$"


def test_remat_attention_and_mesh_defaults():
    config = stage1.get_config()
    assert model_options(config.model, pretrained=False) == {"remat_policy": None, "attention_impl": None}
    assert model_options(config.model, pretrained=True)["remat_policy"] == "full"
    config.model.update(remat="dots", attention="cudnn")
    assert model_options(config.model, pretrained=True) == {"remat_policy": "dots", "attention_impl": "cudnn"}
    config.model.attention = "flash"
    with pytest.raises(ConfigError, match="--config.model.attention='flash'"):
        model_options(config.model, pretrained=True)
    assert mesh_shape(config) == (-1, 1, 1)  # the demo: data parallel
    config.model.hf_dir = "Qwen2.5-VL-7B-Instruct"
    assert mesh_shape(config) == (1, -1, 1)  # HF models: parameters sharded over every device
    config.mesh_shape = (2, 1, 1)
    assert mesh_shape(config) == (2, 1, 1)
