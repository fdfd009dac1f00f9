"""Stage 1 (unified event-centric schema) followed by stage 2 — the RMPL curriculum.

    python -m rmpl_jax.main --config configs/stage1.py                  # demo: synthetic data
    python -m rmpl_jax.main --config configs/stage1.py \
        --config.model.hf_dir=Qwen2.5-VL-7B-Instruct --config.data.ace_path=ace/train.json \
        --config.data.imsitu_path=swig/train.json --config.data.imsitu_images=swig/images \
        --config.data.mnre_path=mnre/mnre_train.txt --config.data.mnre_images=mnre/images

With no data paths the run generates the synthetic corpus, trains the tiny demo model from
scratch (there are no offline weights) and scores held-out synthetic data.

The held-out decode takes the `decode` block, the one predict takes (keys and defaults:
rmpl_jax/infer/settings.py), e.g. `--config.decode.no_event_penalty=0.5`. Renamed:
`--config.eval.max_new_tokens` (and eval.batch_size, eval.buckets, eval.pipeline,
eval.pair_filter, eval.no_event_penalty) is `--config.decode.KEY`; `eval.heldout` stays.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from rmpl_jax.infer.settings import decode_block


def get_config():
    c = ml_collections.ConfigDict()
    c.mode = "train"
    c.seed = 0
    c.stages = ("stage1", "stage2")
    # Where the first stage starts: a run directory (its last stage), a stage directory or a
    # checkpoints directory; 'base' starts from the base model on purpose (stage 2 alone).
    c.init_from = ""

    c.model = ml_collections.ConfigDict()
    c.model.hf_dir = ""  # empty: the demo model, trained in full (LoRA needs pretrained weights)
    c.model.dtype = "float32"  # 'bfloat16' on accelerators
    c.model.remat = "auto"  # 'auto' (full for HF models, none for the demo), 'none', 'full' or 'dots'
    c.model.attention = "auto"  # 'auto' (cuDNN flash attention on GPUs in bf16), 'xla' or 'cudnn'
    c.model.lora_rank = 16
    c.model.lora_alpha = 32.0
    c.model.lora_targets = ""  # regex over projection paths; '': the family's default (its LM projections)
    c.model.trainable_regex = ""  # also train these parameters, e.g. r'^visual/merger/'
    c.model.demo = ml_collections.ConfigDict()
    c.model.demo.vocab_size = 1024
    c.model.demo.text = dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
    )
    c.model.demo.vision = dict(
        depth=2,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,
        patch_size=14,
        temporal_patch_size=2,
        spatial_merge_size=2,
        in_channels=3,
        window_size=56,
        fullatt_block_indexes=[1],
        hidden_act="silu",
    )

    c.data = ml_collections.ConfigDict()
    c.data.ace_path = ""  # JMEE JSON or OneIE JSONL (.jsonl)
    c.data.imsitu_path = ""  # imSitu/SWiG JSON
    c.data.imsitu_images = ""
    c.data.imsitu_mapping = ""  # ace_sr_mapping.txt; empty: the shared data's copy
    c.data.mnre_path = ""
    c.data.mnre_images = ""
    # M2E2's own text as training data, cut by a document split (docs/m2e2_text.md): the
    # `train_part` documents' sentences train, and after the run the `heldout_part` documents
    # are predicted and scored ('' : not scored). Empty paths: the shared data's m2e2/ and
    # splits/m2e2_text_docs.json.
    c.data.m2e2 = ml_collections.ConfigDict()
    c.data.m2e2.use = False
    c.data.m2e2.dir = ""
    c.data.m2e2.split = ""
    c.data.m2e2.train_part = "train"
    c.data.m2e2.heldout_part = "test"
    c.data.lenient = False  # skip and count bad records, photos and too-long examples instead of failing
    c.data.synthetic = ml_collections.ConfigDict(dict(train_docs=300, heldout_docs=30))
    # Image arguments grounded in detector candidates (docs/candidate_boxes.md): the tasks'
    # prompts list a photo's detector boxes and each argument names one instead of writing free
    # numbers. Synthetic photos bring their own detector output; imSitu/SWiG photos take a
    # detections file in the YOLO JSON shape of the shared M2E2 file.
    c.data.candidates = ml_collections.ConfigDict()
    c.data.candidates.use = False
    c.data.candidates.tasks = ("visual_ee", "image_argument")
    c.data.candidates.min_iou = 0.5  # a gold box is trained as its best candidate at this IoU, else dropped
    c.data.candidates.min_score = 0.25  # detections listed: score >= this, highest first ...
    c.data.candidates.max_per_image = 10  # ... at most this many (0: all)
    c.data.candidates.imsitu_detections = ""
    # The multimedia task's pairs (stage 2 trains it when its weight is > 0; docs/multimedia.md):
    # the share of a document's (sentence, photo) pairs without a shared event kept, and photos
    # of the same type from other documents drawn per positive pair (target 'none').
    c.data.multimedia = ml_collections.ConfigDict(dict(same_doc_negatives=1.0, other_doc_negatives=0))
    c.data.prompts = "full"  # 'brief': text prompts without the schema and format lines (m2e2/render.py)
    c.data.eventless_share = 1.0  # share of sentences without events kept in text_mention / text_ee
    c.data.image_side = 112  # every photo is resized to this square (a multiple of 28)
    c.data.buckets = (256, 384, 512)  # 512: visual_ee prompts that list candidates
    c.data.batch_size = 8  # global: examples per step (packed: on average)
    # Several examples per row (block-diagonal attention, positions restarting per example):
    # rows of pack_length tokens (0: the largest bucket), as many as batch_size examples of the
    # task's mean length fill (pack_rows 0) or pack_rows; False pads each example to its bucket.
    c.data.packing = True
    c.data.pack_length = 0
    c.data.pack_rows = 0
    c.data.num_workers = 0  # featurising processes (0: threads of the training process)
    c.data.prefetch = 2  # batches featurised ahead in the background while a step runs

    c.stage1 = ml_collections.ConfigDict()
    # Shares of the batches. Photos weigh twice the text: in 500 steps the demo's tiny vision
    # tower tells the photo types apart only with that many photo batches (at 0.5 it confuses
    # similar colours, and image arguments score only in photos of the right type;
    # benchmarks/demo_cpu.md). Set them to your data's needs on real runs.
    c.stage1.tasks = {"text_ee": 1.0, "visual_ee": 2.0, "mnre": 0.5, "multimedia": 0.0}
    c.stage1.steps = 500
    c.stage1.learning_rate = 3e-3
    c.stage1.warmup_steps = 20

    c.stage2 = ml_collections.ConfigDict()
    c.stage2.tasks = {
        "text_mention": 0.3,
        "text_argument": 0.3,
        "image_mention": 0.2,
        "image_argument": 0.2,
        "multimedia": 0.0,  # > 0: the joint sentence + photo task (and the held-out 'multimedia' pipeline)
    }
    c.stage2.steps = 200
    c.stage2.learning_rate = 1e-3
    c.stage2.warmup_steps = 10

    c.train = ml_collections.ConfigDict(dict(grad_accum=1, loss_chunk=512, weight_decay=0.0))
    # The LM head runs only at answer positions (up to the data's longest answer, gathered
    # before the vocabulary projection); False projects every position.
    c.train.head_at_targets = True
    c.train.log_every = 1  # W/<stage>/metrics.jsonl and TensorBoard events every N steps
    c.mesh_shape = ()  # (data, fsdp, tensor); (): (1, -1, 1) for HF models (fsdp), (-1, 1, 1) for the demo
    c.checkpoint = ml_collections.ConfigDict(dict(every=100, keep=2))
    c.export = True  # W/export: merged HF safetensors + processor files, and the adapters
    c.eval = ml_collections.ConfigDict(dict(heldout=True))  # decode and score the held-out data at the end
    # How: the `decode` block predict takes too, its keys and defaults in one place
    # (rmpl_jax/infer/settings.py, DecodeSettings). Pipeline 'auto': 'multimedia' when the last
    # stage trains that task, else 'stage2' / 'joint' by stage.
    c.decode = decode_block()
    # The held-out budget stays 96 tokens (predict's default: 128): the demo's weak early models
    # run answers to the budget, and at 128 its held-out results change (60/30 steps: 223 text
    # events predicted instead of 205, answers up to 128 tokens).
    c.decode.max_new_tokens = 96
    # Multi-host: on a TPU VM slice, SLURM, Open MPI or Kubernetes the same command on every
    # worker joins one job (JAX's cluster detection; auto=False turns it off); elsewhere set
    # all three of coordinator_address, num_processes and process_id.
    c.distributed = ml_collections.ConfigDict()
    c.distributed.auto = True
    c.distributed.coordinator_address = placeholder(str)  # 'host:port' of process 0
    c.distributed.num_processes = placeholder(int)
    c.distributed.process_id = placeholder(int)
    return c
