"""Predict takes the training run's settings unless its own config sets them."""

from __future__ import annotations

from configs import predict_m2e2, stage1
from rmpl_jax.io.run_config import write_run_config
from rmpl_jax.modes.predict import decode_settings, resolve_from_run


def _run_dir(tmp_path):
    train = stage1.get_config()
    train.model.hf_dir = str(tmp_path / "base")
    train.model.dtype = "bfloat16"
    train.model.lora_rank, train.model.lora_alpha = 8, 16.0
    train.model.lora_targets = r"^layers/self_attn/q_proj$"
    train.data.image_side = 56
    write_run_config(str(tmp_path), train)
    ckpt = tmp_path / "stage2" / "checkpoints"
    ckpt.mkdir(parents=True)
    return ckpt


def test_unset_settings_come_from_the_run(tmp_path):
    config = predict_m2e2.get_config()
    config.checkpoint = str(_run_dir(tmp_path))
    assert resolve_from_run(config) is not None
    assert config.model.hf_dir == str(tmp_path / "base") and config.model.dtype == "bfloat16"
    assert (config.model.lora_rank, config.model.lora_alpha) == (8, 16.0)
    assert config.model.lora_targets == r"^layers/self_attn/q_proj$" and config.image_side == 56


def test_explicit_settings_win_and_defaults_fill_the_rest(tmp_path):
    config = predict_m2e2.get_config()
    config.checkpoint = str(_run_dir(tmp_path))
    config.image_side, config.model.dtype = 0, "float32"
    resolve_from_run(config)
    assert config.image_side == 0 and config.model.dtype == "float32" and config.model.lora_rank == 8

    alone = predict_m2e2.get_config()
    alone.model.hf_dir = str(tmp_path / "a" / "b" / "c" / "d" / "nowhere")  # beyond the 3 levels searched
    assert resolve_from_run(alone) is None
    assert alone.image_side == 448 and alone.model.dtype == "float32" and alone.model.lora_rank == 16


def test_candidate_settings_come_from_the_run(tmp_path):
    train = stage1.get_config()
    train.data.candidates.use, train.data.candidates.tasks = True, ("image_argument",)
    train.data.candidates.max_per_image = 7
    write_run_config(str(tmp_path), train)
    (tmp_path / "stage2" / "checkpoints").mkdir(parents=True)
    config = predict_m2e2.get_config()
    config.checkpoint = str(tmp_path / "stage2" / "checkpoints")
    resolve_from_run(config)
    assert config.candidates.use is True and tuple(config.candidates.tasks) == ("image_argument",)
    assert (config.candidates.max_per_image, config.candidates.min_score) == (7, 0.25)
    assert predict_m2e2.get_config().candidates.use is None  # unset until a run or the default fills it


def test_auto_pipeline_follows_the_runs_last_stage(tmp_path):
    ckpt = _run_dir(tmp_path)
    config = predict_m2e2.get_config()
    config.checkpoint = str(ckpt)
    assert config.decode.pipeline == "auto"
    assert decode_settings(config, resolve_from_run(config)).pipeline == "stage2"
    assert decode_settings(config, None).pipeline == "stage2"  # no training run found

    train = stage1.get_config()
    train.stage2.tasks.multimedia = 0.2
    write_run_config(str(tmp_path), train)
    assert decode_settings(config, resolve_from_run(config)).pipeline == "multimedia"
    train.stages = ("stage1",)
    write_run_config(str(tmp_path), train)
    assert decode_settings(config, resolve_from_run(config)).pipeline == "joint"
    config.decode.pipeline = "stage2"  # an explicit choice wins
    assert decode_settings(config, resolve_from_run(config)).pipeline == "stage2"
