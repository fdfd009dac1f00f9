"""A text-only Llama through the existing configs end to end: stage 2 with the image tasks
dropped by overrides trains with LoRA (the family's default targets), checkpoints, exports a
directory transformers-compatible loaders read, and scores held-out data with every photo
skipped and counted; `mode=predict`'s loader puts the checkpoint's adapters back."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("transformers")

from configs import predict_m2e2, stage2
from rmpl_jax.modes import predict as predict_mode
from rmpl_jax.modes import train
from rmpl_jax.train.state import split_model
from tests.testing.hf_tiny_llama import tiny_llama_chat_dir


def test_stage2_text_tasks_train_export_and_score(tmp_path, capsys):
    hf_dir = tiny_llama_chat_dir(tmp_path / "base")
    c = stage2.get_config()
    c.model.hf_dir = str(hf_dir)
    c.model.lora_rank, c.model.lora_alpha = 4, 8.0
    c.stage2.tasks.image_mention = c.stage2.tasks.image_argument = 0.0
    c.stage2.steps = 2
    c.init_from = "base"  # stage 2 straight from the base model
    c.data.synthetic.train_docs, c.data.synthetic.heldout_docs = 8, 2
    c.data.buckets = (1024, 2048)
    c.data.batch_size = 2
    c.decode.batch_size, c.decode.max_new_tokens = 8, 16
    workdir = tmp_path / "W"
    metrics = train.run(c, str(workdir))
    out = capsys.readouterr().out
    assert "task image_mention: weight 0.0, left out of the mixture" in out
    assert "stage2 loss: first" in out
    decode = metrics["decode"]
    assert decode["images_skipped_text_only"] > 0 and decode["images"] == 0
    assert decode["parse_failures"]["text_mention"] == 0  # constrained decoding with the ChatML end token
    assert metrics["text_event"]["gold"] > 0 and metrics["image_event"]["pred"] == 0
    export = workdir / "export"
    assert {"config.json", "model.safetensors", "tokenizer.json", "adapters.safetensors"} <= set(os.listdir(export))
    assert json.loads((export / "config.json").read_text())["model_type"] == "llama"

    config = predict_m2e2.get_config()
    config.checkpoint = str(workdir / "stage2" / "checkpoints")
    predict_mode.resolve_from_run(config)
    assert config.model.hf_dir == str(hf_dir) and config.model.lora_targets == ""
    model, step = predict_mode.load_model(config.model, config.checkpoint)
    trainable = split_model(model, ".")[1]
    adapters = [k for k in trainable if "lora_b" in k]
    assert step == 2 and adapters and any(np.abs(np.asarray(trainable[k])).max() > 0 for k in adapters)
