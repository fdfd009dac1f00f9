"""The curriculum loop end to end on the synthetic corpus: both stages train, checkpoint,
hand weights from stage 1 to stage 2, log their metrics, and a longer rerun resumes instead of
restarting; a NaN loss stops the run naming the step and examples, with the skip report still
printed."""

import glob
import math
import os

import pytest

from configs import stage1
from rmpl_jax.train.metrics_log import read_metrics


def small_config(stage1_steps: int):
    c = stage1.get_config()
    c.data.synthetic.train_docs = 12
    c.data.synthetic.heldout_docs = 2
    c.data.buckets = (768,)
    c.data.batch_size = 2
    c.model.demo.vocab_size = 400
    c.stage1.steps = stage1_steps
    c.stage2.steps = 2
    c.checkpoint.every = 2
    c.eval.heldout = False
    return c


def steps_saved(directory):
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def test_two_stages_checkpoint_and_resume(tmp_path, capsys):
    from rmpl_jax.modes import train

    workdir = str(tmp_path)
    train.run(small_config(stage1_steps=2), workdir)
    out = capsys.readouterr().out
    assert "no data configured: training the demo model on the synthetic corpus" in out
    assert f"initialised stage2 from {workdir}/stage1/checkpoints" in out
    assert steps_saved(f"{workdir}/stage1/checkpoints")[-1] == 2
    assert steps_saved(f"{workdir}/stage2/checkpoints")[-1] == 2
    export = f"{workdir}/export"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(export))
    from rmpl_jax.models.family import family_for_dir
    from rmpl_jax.models.qwen2_vl.processor import QwenProcessor

    assert QwenProcessor.from_dir(export).tokenizer is not None
    family_for_dir(export).load_hf(export)  # every tensor present and well shaped
    losses = [line for line in out.splitlines() if "loss: first" in line]
    assert len(losses) == 2 and all(math.isfinite(float(line.split()[-1])) for line in losses)
    for stage in ("stage1", "stage2"):
        assert [line["step"] for line in read_metrics(f"{workdir}/{stage}")] == [1, 2]
        assert glob.glob(f"{workdir}/{stage}/events.out.tfevents.*")
    assert os.path.getsize(f"{workdir}/curves.png") > 0
    card = open(f"{workdir}/run.md").read()
    assert "| stage1 | 0 -> 2 (2) | 2 |" in card and "task mnre had no examples" in card

    # A longer stage 1 resumes from its step-2 checkpoint; stage 2 is already done.
    train.run(small_config(stage1_steps=4), workdir)
    out = capsys.readouterr().out
    assert "resumed stage1 from step 2" in out
    assert steps_saved(f"{workdir}/stage1/checkpoints")[-1] == 4
    assert "resumed stage2 from step 2" in out
    assert [line["step"] for line in read_metrics(f"{workdir}/stage1")] == [1, 2, 3, 4]
    card = open(f"{workdir}/run.md").read()
    assert "| stage1 | 2 -> 4 (2) | 4 |" in card and "| stage2 | 2 -> 2 (0) | 2 |" in card


def test_nan_stops_with_names_and_skips_are_reported(tmp_path, capsys):
    # An absurd learning rate makes step 2's loss NaN; a 256-token bucket is too short for
    # some synthetic sentences, which lenient mode skips. Both surface in the run's output.
    from rmpl_jax.modes import train
    from rmpl_jax.train.numeric_guard import NonFiniteLoss

    c = small_config(stage1_steps=4)
    c.stages = ("stage1",)
    c.stage1.tasks = {"text_ee": 1.0}
    c.stage1.learning_rate, c.stage1.warmup_steps = 1e30, 0
    c.data.synthetic.train_docs, c.data.buckets, c.data.lenient = 6, (256,), True
    c.model.demo.vocab_size = 1024
    c.model.demo.text.update(hidden_size=64, intermediate_size=128, num_hidden_layers=1)
    c.model.demo.text.update(num_attention_heads=2, num_key_value_heads=1)
    c.checkpoint.every = 1
    workdir = str(tmp_path)
    with pytest.raises(NonFiniteLoss) as err:
        train.run(c, workdir)
    message = str(err.value)
    assert message.startswith("stage1 step 2: loss nan") and "[text_ee:SYN_train_" in message
    assert f"the last good checkpoint is step 1 in {workdir}/stage1/checkpoints" in message
    assert steps_saved(f"{workdir}/stage1/checkpoints") == [1]
    assert [line["step"] for line in read_metrics(f"{workdir}/stage1")] == [1]
    out = capsys.readouterr().out
    assert "text_ee: longer than the largest bucket (256 tokens)" in out.split("skipped ")[-1]
