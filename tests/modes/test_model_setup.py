"""What runs take from the family: a text-only model asked for image tasks is a config error
naming the tasks and the overrides that drop them; `lora_targets=""` is the family's default."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from configs import stage1
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.models.family import get_family
from rmpl_jax.modes.model_setup import check_tasks_fit, family_and_config, lora_targets, mesh_shape, model_options
from tests.testing.hf_tiny_llama import make_tiny_llama


def test_image_tasks_on_a_text_only_model(tmp_path):
    hf_dir, _ = make_tiny_llama(tmp_path, "gqa")
    family, model_config = family_and_config(str(hf_dir))
    config = stage1.get_config()
    config.model.hf_dir = str(hf_dir)
    with pytest.raises(ValueError) as err:
        check_tasks_fit(config, family, model_config)
    message = str(err.value)
    assert "text-only llama model" in message
    assert "stage1: visual_ee" in message and "stage2: image_argument, image_mention" in message
    fixes = [
        "--config.stage1.tasks.visual_ee=0",
        "--config.stage2.tasks.image_argument=0",
        "--config.stage2.tasks.image_mention=0",
    ]
    assert message.endswith("Drop them with: " + " ".join(fixes))
    config.stage1.tasks.visual_ee = 0.0
    config.stage2.tasks.image_mention = config.stage2.tasks.image_argument = 0.0
    check_tasks_fit(config, family, model_config)  # text tasks only: fine
    config.stage2.tasks.multimedia = 0.2
    with pytest.raises(ValueError, match=r"stage2: multimedia\). Drop them with: --config.stage2.tasks.multimedia=0$"):
        check_tasks_fit(config, family, model_config)
    config.stage2.tasks.multimedia = 0.0
    config.data.mnre_images = "mnre/images"
    with pytest.raises(ValueError, match=r"stage1: mnre with photos .* --config.data.mnre_images=''"):
        check_tasks_fit(config, family, model_config)


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
