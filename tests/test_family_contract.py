"""The family contract: every registered model family runs the whole product path.

Parametrised over the registry (`models.family.FAMILIES`), so a family is covered the moment it
registers. For each, a tiny random HF directory with a transformers tokenizer and chat template
(tests/testing/family_dirs.py) goes through what a user runs:

1. `configs/stage1.py` with `model.hf_dir`: stage 1 then stage 2 on the synthetic corpus, with
   LoRA (photos for vision families; a text-only family trains the text tasks and the run
   reports the image tasks it left out);
2. the held-out decode (constrained, every answer parses) and strict scoring;
3. the merged export, reloaded by transformers: logits equal ours (fp32, <= 1e-4), on text and,
   for vision families, with a photo;
4. `configs/predict_m2e2.py` from that export on a few M2E2 sentences (and their photos).

What a new family must implement is what this test runs; see docs/families.md.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from configs import predict_m2e2, stage1
from rmpl_jax.m2e2.predictions import read_predictions
from rmpl_jax.models.family import FAMILIES
from rmpl_jax.modes import predict as predict_mode
from rmpl_jax.modes import train
from rmpl_jax.train.model_setup import family_and_config
from tests.testing.family_dirs import FAMILY_DIRS
from tools import parity

MAX_LOGIT_DIFF = 1e-4


def _train_config(hf_dir) -> object:
    c = stage1.get_config()
    c.model.hf_dir = str(hf_dir)
    c.model.lora_rank, c.model.lora_alpha = 4, 8.0
    c.stage1.steps = c.stage2.steps = 2
    c.checkpoint.every = 2
    c.data.synthetic.train_docs, c.data.synthetic.heldout_docs = 6, 2
    c.data.image_side = 56
    c.data.batch_size = 2
    c.data.buckets = (512, 1024)
    c.decode.batch_size, c.decode.max_new_tokens = 8, 24
    return c


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_runs_the_product_path(model_type, tmp_path, m2e2_dir, capsys):
    if model_type not in FAMILY_DIRS:
        pytest.fail(f"model_type {model_type!r} is registered but tests/testing/family_dirs.py has no tiny directory")
    hf_dir = FAMILY_DIRS[model_type](tmp_path / "base")
    family, model_config = family_and_config(str(hf_dir))
    vision = family.has_vision(model_config)
    workdir = tmp_path / "W"

    metrics = train.run(_train_config(hf_dir), str(workdir))
    out = capsys.readouterr().out
    assert "stage1 loss: first" in out and "stage2 loss: first" in out, out
    run_card = (workdir / "run.md").read_text()
    decode = metrics["decode"]
    if vision:
        assert "task visual_ee:" in out and "task image_argument:" in out
        assert decode["images"] > 0 and metrics["image_event"]["gold"] > 0
    else:
        for task in ("visual_ee", "image_mention", "image_argument"):
            assert f"task {task}: the text-only {family.name} model takes no photos, left out" in out
            assert f"task {task}" in run_card
        assert decode["images"] == 0 and decode["images_skipped_text_only"] > 0
    assert metrics["text_event"]["gold"] > 0
    assert all(n == 0 for n in decode["parse_failures"].values()), decode["parse_failures"]

    export = workdir / "export"
    assert json.loads((export / "config.json").read_text())["model_type"] == model_type
    for images in (0, 1) if vision else (0,):
        result = parity.main(["--hf-dir", str(export), "--images", str(images)])
        assert result["max_abs_logit_diff"] <= MAX_LOGIT_DIFF, result

    config = predict_m2e2.get_config()
    config.model.hf_dir = str(export)
    config.m2e2_dir, config.images_dir = str(m2e2_dir), str(m2e2_dir / "images")
    config.limit = 3
    config.decode.batch_size, config.decode.max_new_tokens = 4, 24
    predict_mode.run(config, str(tmp_path / "P"))
    predictions = read_predictions(tmp_path / "P" / "predictions.jsonl")
    assert len(predictions.text) == 3
    assert (tmp_path / "P" / "metrics.json").is_file()
