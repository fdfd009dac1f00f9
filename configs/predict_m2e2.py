"""Predict M2E2 with a trained model and score it under the strict protocol.

    python -m rmpl_jax.main --config configs/predict_m2e2.py \
        --config.model.hf_dir=Qwen2.5-VL-7B-Instruct --config.checkpoint=W/stage2/checkpoints \
        --config.m2e2_dir=m2e2 --config.images_dir=m2e2/images --workdir W/predict

Writes W/predictions.jsonl and W/metrics.json. The image side, LoRA settings and dtype must be
the training run's. A demo run's model is `--config.model.hf_dir=W/demo_model` with its checkpoint.
"""

import ml_collections

from rmpl_jax.models.lora import DEFAULT_TARGETS


def get_config():
    c = ml_collections.ConfigDict()
    c.mode = "predict"
    c.seed = 0
    c.m2e2_dir = ""  # empty: $RMPL_SHARED_DATA/m2e2 or ../shared/data/m2e2
    c.images_dir = ""  # M2E2 photos (<image_id>.jpg); absent photos are counted, text only
    c.lenient = False  # skip and count bad annotation records instead of failing
    c.limit = 0  # > 0: only the first N sentences (and their photos), scored on those alone

    c.model = ml_collections.ConfigDict()
    c.model.hf_dir = ""  # HF directory (weights + tokenizer), or a demo run's demo_model/
    c.model.dtype = "float32"  # 'bfloat16' on accelerators
    c.model.lora_rank = 16  # used when the checkpoint holds LoRA adapters
    c.model.lora_alpha = 32.0
    c.model.lora_targets = DEFAULT_TARGETS
    c.checkpoint = ""  # a training stage's checkpoints/ directory; empty: the HF weights as is
    c.checkpoint_step = -1  # -1: the latest

    c.image_side = 448  # the training square side (a multiple of 28); 0: photos at their own size
    c.batch_size = 16
    c.max_new_tokens = 128
    c.pipeline = "stage2"  # 'stage2': mentions, then each mention's arguments; 'joint': whole events
    c.constrained = True  # schema-constrained decoding (every output parses)
    c.temperature = 0.0  # 0: greedy
    c.buckets = (256, 512, 768, 1024, 1536, 2048)  # prompt length buckets (left padding)
    return c
