"""Run by test_sharded_load.py with 8 host CPU devices: an HF directory loaded through
`sharding.variable_sharding` on the fsdp mesh HF runs default to; prints one JSON line."""

from __future__ import annotations

import json
import tempfile

import jax
import numpy as np
from flax import nnx

from rmpl_jax.infer.decode import Decoder
from rmpl_jax.models.family import get_family
from rmpl_jax.models.layers import variables_by_path
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.model_setup import HF_MESH
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.state import create_train_state, split_model
from tests.testing.hf_tiny import tiny_config_dict

KERNEL = "layers/mlp/gate_up_proj/kernel"  # [layers, embed, mlp]: embed is sharded by fsdp


def main() -> None:
    family = get_family("qwen2_5_vl")
    cfg = family.config_from_hf(dict(tiny_config_dict("qwen2_5_vl"), model_type="qwen2_5_vl"))
    reference = family.build(cfg, rngs=nnx.Rngs(0))
    mesh = shd.make_mesh(HF_MESH)
    with tempfile.TemporaryDirectory() as out:
        family.export_hf(reference, out)
        model = family.load_hf(out, shardings=shd.variable_sharding(mesh))
    params = variables_by_path(model)
    kernel = params[KERNEL][...]
    shard_shapes = sorted({tuple(s.data.shape) for s in kernel.addressable_shards})
    equal = all(
        np.array_equal(np.asarray(v[...]), np.asarray(variables_by_path(reference)[k][...])) for k, v in params.items()
    )
    layout, trainable, frozen = split_model(model, r"^norm/")
    tx, _ = make_optimizer(1e-3)
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    shared = sum(state.frozen[k] is frozen[k] for k in frozen)
    decoder = Decoder(model, batch_size=8, max_new_tokens=4, eos_ids=(1,), pad_id=0)
    ids = decoder._rows(np.zeros((8, 16), np.int32))
    print(
        json.dumps(
            {
                "devices": len(jax.devices()),
                "mesh": dict(mesh.shape),
                "kernel_shape": list(kernel.shape),
                "kernel_spec": str(kernel.sharding.spec),
                "kernel_shard_shapes": [list(s) for s in shard_shapes],
                "values_equal": equal,
                "frozen_shared": shared,
                "frozen_total": len(frozen),
                "decode_rows_per_device": sorted({s.data.shape[0] for s in ids.addressable_shards}),
            }
        )
    )


if __name__ == "__main__":
    main()
