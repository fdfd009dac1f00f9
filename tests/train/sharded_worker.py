"""Subprocess body of test_sharded_step: run with 8 host CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=8). Trains the tiny Qwen2.5-VL for a few
steps on several meshes and prints one JSON line with losses and final adapters' diffs
against the 1-device run."""

from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np

from rmpl_jax.train import distributed as dist
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.state import abstract, create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from tests.testing import train_models as tiny

STEPS = 3
BATCH = 16


def run(mesh_shape, devices, accum, model_dtype=None):
    # model_dtype='bfloat16': bf16 activations and frozen weights, f32 master adapters.
    model = tiny.build(**({"dtype": model_dtype, "param_dtype": model_dtype} if model_dtype else {}))
    layout, trainable, frozen = split_model(model)
    mesh = shd.make_mesh(mesh_shape, devices=devices)
    tx, sched = make_optimizer(1e-2, warmup_steps=1, total_steps=10)
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    step = make_train_step(layout, tx, mesh, state, grad_accum_steps=accum, loss_chunk_size=8, lr_schedule=sched)
    t0 = time.time()
    step.compile(
        abstract(state),
        dist.global_batch(tiny.text_batch(0, BATCH), mesh),
        print_fn=lambda s: print(s, file=sys.stderr),
    )
    compile_s = time.time() - t0
    losses = []
    t0 = time.time()
    for k in range(STEPS):
        state, metrics = step(state, dist.global_batch(tiny.text_batch(k, BATCH), mesh))
        losses.append(float(metrics["loss"]))
    run_s = time.time() - t0
    params = {n: np.asarray(jax.device_get(v)) for n, v in state.trainable.items()}
    specs = {n: str(v.sharding.spec) for n, v in {**state.frozen, **state.trainable}.items()}
    shards = len({str(s.index) for s in state.frozen["embed_tokens/embedding"].addressable_shards})
    return losses, params, specs, shards, compile_s, run_s


def main():
    assert jax.device_count() == 8, jax.devices()
    ref_losses, ref_params, _, _, c0, r0 = run((1, 1, 1), jax.devices()[:1], 1)
    out = {
        "ref": {
            "losses": ref_losses,
            "compile_s": c0,
            "run_s": r0,
            "max_abs_param": max(float(np.abs(p).max()) for p in ref_params.values()),
        }
    }
    configs = {"dp2_fsdp2_tp2_accum2": ((2, 2, 2), 2, None), "fsdp2_tp4_bf16": ((1, 2, 4), 1, "bfloat16")}
    for name, (shape, accum, dtype) in configs.items():
        losses, params, specs, shards, c, r = run(shape, jax.devices(), accum, dtype)
        out[name] = {
            "losses": losses,
            "max_loss_rel_diff": max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses)),
            "max_param_abs_diff": max(float(np.abs(params[n] - ref_params[n]).max()) for n in ref_params),
            "specs": {
                n: specs[n]
                for n in (
                    "embed_tokens/embedding",
                    "layers/self_attn/qkv_proj/kernel",
                    "layers/self_attn/qkv_proj/lora_b_q_proj",
                )
            },
            "embed_shards": shards,
            "compile_s": c,
            "run_s": r,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
