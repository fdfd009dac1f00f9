"""One process of test_multiprocess_run: `python train_run_worker.py PID NPROC PORT WORKDIR`.
Runs the real training mode (synthetic corpus, Grain pipeline, demo model, checkpoints) as
one of NPROC processes, and writes what its host batches looked like at each step to
WORKDIR/batches_<PID>.json: the shape, whether its rows were packed and the bucket its own
longest example needs. RMPL_TEST_PACKING=0 turns packing off."""

from __future__ import annotations

import json
import os
import sys

from configs import stage1
from rmpl_jax.data.buckets import bucket_length
from rmpl_jax.modes import train
from rmpl_jax.train import loop

PID, NPROC, PORT, WORKDIR = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
BUCKETS = (384, 512, 768)


def config():
    c = stage1.get_config()
    c.stages = ("stage1",)
    c.stage1.tasks = {"text_ee": 1.0, "visual_ee": 0.0, "mnre": 0.0}  # one task: fewer shapes to compile
    c.data.synthetic.train_docs = 12
    c.data.synthetic.heldout_docs = 2
    c.data.buckets = BUCKETS
    c.data.batch_size = 4  # global: 2 examples per process (unpacked)
    c.data.packing = os.environ.get("RMPL_TEST_PACKING", "1") == "1"
    c.model.demo.vocab_size = 400
    c.model.demo.text["num_hidden_layers"] = 1
    c.model.demo.vision.update(depth=1, fullatt_block_indexes=[0])
    c.stage1.steps = 4
    c.checkpoint.every = 2
    c.train.log_every = 2
    c.export = False
    c.eval.heldout = False
    c.distributed.coordinator_address = f"127.0.0.1:{PORT}"
    c.distributed.num_processes = NPROC
    c.distributed.process_id = PID
    return c


seen = []
real_global_batch = loop.global_batch


def recording_global_batch(batch, mesh, family):
    own_longest = int(batch["attention_mask"].sum(axis=1).max())
    packed = "segment_ids" in batch
    seen.append(
        {"shape": list(batch["input_ids"].shape), "packed": packed, "own_bucket": bucket_length(own_longest, BUCKETS)}
    )
    return real_global_batch(batch, mesh, family)


loop.global_batch = recording_global_batch  # what train_stage calls
train.run(config(), WORKDIR)
with open(os.path.join(WORKDIR, f"batches_{PID}.json"), "w") as f:
    json.dump(seen, f)
