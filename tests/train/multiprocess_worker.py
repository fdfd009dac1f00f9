"""One process of test_multiprocess: `python multiprocess_worker.py PID NPROC PORT OUTDIR`,
4 host CPU devices each, Gloo collectives. Trains the tiny Qwen2.5-VL on one 8-device mesh
spanning both processes, checkpoints, restores, and compares with a single-device run of
the full global batch. Process 0 prints one JSON line."""

from __future__ import annotations

import json
import pathlib
import sys

from rmpl_jax.train import distributed as dist

PID, NPROC, PORT, OUT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dist.initialize(f"127.0.0.1:{PORT}", NPROC, PID, initialization_timeout=60)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from rmpl_jax.train import checkpoint as ck  # noqa: E402
from rmpl_jax.train import sharding as shd  # noqa: E402
from rmpl_jax.train.optimizer import make_optimizer  # noqa: E402
from rmpl_jax.train.state import create_train_state, split_model  # noqa: E402
from rmpl_jax.train.step import make_train_step  # noqa: E402
from tests.testing import train_models as tiny  # noqa: E402

STEPS, BATCH = 3, 16


def setup(devices, mesh_shape):
    model = tiny.build()
    layout, trainable, frozen = split_model(model)
    mesh = shd.make_mesh(mesh_shape, devices=devices)
    tx, _ = make_optimizer(1e-2)
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    step = make_train_step(layout, tx, mesh, state, loss_chunk_size=8)
    return state, step, mesh


def main():
    assert jax.process_count() == NPROC and jax.device_count() == 4 * NPROC
    state, step, mesh = setup(jax.devices(), (-1, 2, 1))
    local = dist.local_batch_size(BATCH)
    losses = []
    for k in range(STEPS):
        full = tiny.text_batch(k, BATCH)
        mine = {n: v[PID * local : (PID + 1) * local] for n, v in full.items()}
        state, m = step(state, dist.global_batch(mine, mesh))
        losses.append(float(m["loss"]))
    params = {n: np.asarray(multihost_utils.process_allgather(v, tiled=True)) for n, v in state.trainable.items()}

    ckdir = pathlib.Path(OUT) / "ckpt"
    with ck.CheckpointManager(ckdir) as mgr:
        mgr.save(state, data_state={"process": PID, "next_example": STEPS * local})
    template, _, _ = setup(jax.devices(), (-1, 2, 1))
    with ck.CheckpointManager(ckdir) as mgr:
        restored, data_state = mgr.restore(template)
    assert data_state == {"process": PID, "next_example": STEPS * local}, data_state
    restored_equal = all(
        np.array_equal(np.asarray(multihost_utils.process_allgather(v, tiled=True)), params[n])
        for n, v in restored.trainable.items()
    )

    # Reference: one local device, the full global batch.
    ref, ref_step, _ = setup(jax.local_devices()[:1], (1, 1, 1))
    ref_losses = []
    for k in range(STEPS):
        ref, m = ref_step(ref, tiny.text_batch(k, BATCH))
        ref_losses.append(float(m["loss"]))
    diff = max(float(np.abs(np.asarray(ref.trainable[n]) - params[n]).max()) for n in params)
    multihost_utils.sync_global_devices("done")
    if PID == 0:
        print(
            json.dumps(
                {
                    "losses": losses,
                    "ref_losses": ref_losses,
                    "max_param_abs_diff": diff,
                    "restored_equal": restored_equal,
                    "restored_step": int(restored.step),
                    "mesh": dict(mesh.shape),
                }
            )
        )


if __name__ == "__main__":
    main()
