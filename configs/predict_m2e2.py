"""Predict M2E2 with a trained model and score it under the strict protocol.

    python -m rmpl_jax.main --config configs/predict_m2e2.py \
        --config.model.hf_dir=Qwen2.5-VL-7B-Instruct --config.checkpoint=W/stage2/checkpoints \
        --config.m2e2_dir=m2e2 --config.images_dir=m2e2/images --workdir W/predict

Writes W/predictions.jsonl and W/metrics.json. Settings left unset (hf_dir, dtype, LoRA rank,
alpha and targets, image side) come from the training run's W/config.json, found beside the
checkpoint or in an export; a demo run needs only `--config.checkpoint=W/stage2/checkpoints`.

How to decode is the `decode` block, the one a training run's held-out decode takes (keys and
defaults: rmpl_jax/infer/settings.py), e.g. `--config.decode.max_new_tokens=96`. Renamed:
`--config.max_new_tokens` (and batch_size, buckets, pipeline, pair_filter, constrained,
temperature, no_event_penalty) is `--config.decode.KEY`.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from rmpl_jax.infer.settings import decode_block


def get_config():
    c = ml_collections.ConfigDict()
    c.mode = "predict"
    c.seed = 0
    c.m2e2_dir = ""  # empty: $RMPL_SHARED_DATA/m2e2 or ../shared/data/m2e2
    c.images_dir = ""  # M2E2 photos (<image_id>.jpg); absent photos are counted, text only
    c.lenient = False  # skip and count bad annotation records and unreadable photos instead of failing
    # A document split (e.g. the shared splits/m2e2_text_docs.json): only `split_part`'s
    # documents (sentences, photos, pairs) are predicted and scored.
    c.split = ""
    c.split_part = "test"
    c.limit = 0  # > 0: only the first N sentences (and their photos), scored on those alone
    c.photos_only = False  # only the photos in images_dir, no sentences, scored on those alone

    c.model = ml_collections.ConfigDict()
    # Unset: the training run's (else the defaults of configs/stage1.py; image side 448).
    c.model.hf_dir = ""  # HF directory (weights + tokenizer), or a demo run's demo_model/
    c.model.dtype = ""  # 'bfloat16' on accelerators
    c.model.lora_rank = placeholder(int)  # used when the checkpoint holds LoRA adapters
    c.model.lora_alpha = placeholder(float)
    c.model.lora_targets = ""
    c.checkpoint = ""  # a training run, stage or checkpoints directory; empty: the HF weights as is
    c.checkpoint_step = -1  # -1: the latest
    c.merge_lora = True  # fold LoRA adapters into the weights for decoding (False: keep them)

    # Candidate boxes (docs/candidate_boxes.md); unset: as the training run had them.
    c.candidates = ml_collections.ConfigDict()
    c.candidates.use = placeholder(bool)
    c.candidates.tasks = placeholder(tuple)
    c.candidates.min_score = placeholder(float)
    c.candidates.max_per_image = placeholder(int)
    c.candidates.detections = ""  # the YOLO JSON; empty: yolov8_objects.json beside the annotations
    c.prompts = ""  # 'full' or 'brief' (text prompts without schema lines); unset: the training run's
    c.image_side = placeholder(int)  # the training square side (a multiple of 28); 0: photos at their own size
    # How to decode (the module docstring). Pipeline 'auto' follows the training run's last stage
    # ('multimedia' when it trains that task, 'stage2' after stage 2, 'joint' after stage 1
    # alone; 'stage2' when no run is found).
    c.decode = decode_block()
    return c
